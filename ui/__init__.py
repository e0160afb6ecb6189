"""The PyQt6 panel (`daw-plugin panel`): a client of `daw_plugin`'s engine, through its public API only."""
