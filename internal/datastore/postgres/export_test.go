package postgres

// RangeAttempt is what the test hook sees of one estimated range DELETE.
type RangeAttempt = rangeAttempt

// SetRangeAttemptHook makes d call f after every estimated range DELETE
// attempt has been committed or rolled back, before the batch goes on.
func SetRangeAttemptHook(d *Driver, f func(RangeAttempt)) { d.onRangeAttempt = f }
