"""Two-way referral (双向转诊): one declared state machine, worklists, overdue alerts."""
