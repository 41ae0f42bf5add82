package pgstore

// Kill stops the store as the death of its process would: what is
// buffered is lost, nothing more is written.
func (s *Store) Kill() {
	s.closed.Store(true)
	s.stop()
}
