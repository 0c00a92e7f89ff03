"""The test bed: Mininet topologies driven with a real controller, migrations, demos and the
tools run inside VMs. The app never imports it.
"""
