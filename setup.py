"""Build glue: installs the package plus the start-up hook that fixes ryu-manager.

Metadata lives in setup.cfg. The only custom step copies
``dynprov_ryu_compat.pth`` into the root of the built library, so that it lands
in site-packages, where Python executes it at start-up (see dynprov_ryu_compat.py).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

STARTUP_HOOK = "dynprov_ryu_compat.pth"


class BuildPyWithStartupHook(build_py):
    """build_py that also ships the .pth start-up hook."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / STARTUP_HOOK
        shutil.copyfile(Path(__file__).parent / STARTUP_HOOK, target)

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [
            str(Path(self.build_lib) / STARTUP_HOOK)
        ]


setup(cmdclass={"build_py": BuildPyWithStartupHook})
