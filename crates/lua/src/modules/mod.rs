//! The built-in modules `require` can load, one file each, wired by the list below.
