"""The alliance cockpit (驾驶舱): the indicator library, its figures per alliance and period, targets and exports."""
