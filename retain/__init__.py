"""retain: the base every stage builds on (`retain.base`) and the `retain` command on top."""
