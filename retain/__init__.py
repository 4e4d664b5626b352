"""retain: the application shell (CLI and settings loading) over features/, training/, serving/."""
