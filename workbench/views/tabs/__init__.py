"""Explorer tabs, one module per family. Each module registers its tab with
`@workbench.views.explorer.register_tab("<family>")`; the Explorer imports every module here, so adding a
family's tab means adding one file, not editing the Explorer."""
