"""FastAGI server and IVR menus (see issue 3)."""
