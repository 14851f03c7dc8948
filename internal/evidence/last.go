package evidence

// LastRecord returns the newest record for which match reports true,
// searching back from the end of the log (custody records, for example, are
// skipped by a match that recognises events). ok is false when no record
// matches. The server uses it at start to find which stored events the log
// already holds.
func (l *Log) LastRecord(match func(rec []byte) bool) (rec []byte, ok bool, err error) {
	for i := l.Size(); i > 0; i-- {
		_, r, err := l.readEntry(i - 1)
		if err != nil {
			return nil, false, err
		}
		if match(r) {
			return r, true, nil
		}
	}
	return nil, false, nil
}
