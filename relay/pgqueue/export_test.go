package pgqueue

// Halt stops q as a killed process stops: no more heartbeats or claims,
// and nothing given back.
func (q *Queue) Halt() {
	q.closed.Store(true)
	q.cancel()
	q.wg.Wait()
	q.stopWorkers()
}
