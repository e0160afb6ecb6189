"""Generating on a GPU server: the wire format (`protocol`), the Ray Serve app (`server`) and the client (`client`).

The server only makes raw takes; finishing, the takes library and the DAW stay on the musician's machine.
"""
