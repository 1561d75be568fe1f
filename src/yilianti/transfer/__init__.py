"""Critical-patient transfer (重症转运): request, accept, dispatch, milestone timeline, metrics."""
