"""The ``flowood`` command line (a thin layer over the library)."""
