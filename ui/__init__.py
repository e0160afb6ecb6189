"""The PyQt6 panel (not built yet): it will talk to the core only through `daw_plugin`'s public API."""
