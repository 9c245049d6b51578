"""Planning: the pure planner, its database edge (snapshots, apply, lease) and the season simulation."""
