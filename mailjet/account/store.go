package account

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SnapshotFile is the file name used under data_dir.
const SnapshotFile = "mailjet-account.json"

// ReadSnapshot reads a snapshot written by [WriteSnapshot].
func ReadSnapshot(path string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Version != snapshotVersion {
		return nil, fmt.Errorf("%s: unsupported snapshot version %d", path, s.Version)
	}
	if s.FetchedAt.IsZero() {
		return nil, fmt.Errorf("%s: snapshot has no fetched_at", path)
	}
	s.index()
	return &s, nil
}

// WriteSnapshot stores s at path atomically: it writes a temporary file in
// the same directory, fsyncs it, renames it over path and fsyncs the
// directory, so a crash leaves either the old or the new snapshot. The file
// holds no secrets (senders, domains and the public API key only).
func WriteSnapshot(path string, s *Snapshot) (err error) {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(append(data, '\n')); err != nil {
		return err
	}
	if err = f.Chmod(0o600); err != nil { // like everything in data_dir
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err = d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
