"""The commands of the CLI, one module each: what `cifarlab COMMAND` does, callable from Python too."""
