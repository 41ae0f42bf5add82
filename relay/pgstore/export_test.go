package pgstore

import "context"

// Kill stops the store as the death of its process would: what is
// buffered is lost, nothing more is written.
func (s *Store) Kill() { s.w.cancel() }

// SetKeyN sets the number the next new key adds to its millisecond (call
// it before recording).
func (s *Store) SetKeyN(n uint64) { s.w.keyN.Store(n - 1) }

// PruneIfFree prunes as the periodic pruning does: unless another node
// prunes.
func (s *Store) PruneIfFree(ctx context.Context) error { return s.pruneNow(ctx, false) }

// PruneLock is the advisory lock of the node that prunes.
const PruneLock = pruneLock

// SetFewWords sets how many messages a search may match for List to take
// them from the full-text index.
func (s *Store) SetFewWords(n int) { s.fewWords = n }
