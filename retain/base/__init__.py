"""What every stage may import: typed layered settings and atomic publication."""
