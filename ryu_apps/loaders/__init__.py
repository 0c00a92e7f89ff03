"""Files into core objects: template libraries (under limits, in a worker), mobility domains,
the identifier scheme.
"""
