package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Snapshots keep the last good snapshot where the next start finds it, so
// that the relay goes on enforcing through API outages: a file in
// data_dir ([SnapshotFile]), or the database a cluster's nodes share.
type Snapshots interface {
	// Load returns the saved snapshot, or nil when none is saved.
	Load(ctx context.Context) (*Snapshot, error)
	// Save keeps s in place of the saved one.
	Save(ctx context.Context, s *Snapshot) error
	// Where names the place in the log.
	Where() string
}

// FileSnapshots keeps the snapshot in the file at this path
// ([WriteSnapshot], [ReadSnapshot]).
type FileSnapshots string

// Load reads the file (nil when there is none).
func (f FileSnapshots) Load(context.Context) (*Snapshot, error) {
	s, err := ReadSnapshot(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return s, err
}

// Save writes the file atomically.
func (f FileSnapshots) Save(_ context.Context, s *Snapshot) error { return WriteSnapshot(string(f), s) }

// Where is the path.
func (f FileSnapshots) Where() string { return string(f) }

// SnapshotFile is the file name used under data_dir.
const SnapshotFile = "mailjet-account.json"

// ReadSnapshot reads a snapshot written by [WriteSnapshot].
func ReadSnapshot(path string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := DecodeSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// EncodeSnapshot is s as [Snapshots] keep it (JSON; no secrets: senders,
// domains and the public API key only).
func EncodeSnapshot(s *Snapshot) ([]byte, error) { return json.MarshalIndent(s, "", "  ") }

// DecodeSnapshot reads a snapshot [EncodeSnapshot] wrote.
func DecodeSnapshot(data []byte) (*Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	if s.Version != snapshotVersion {
		return nil, fmt.Errorf("unsupported snapshot version %d", s.Version)
	}
	if s.FetchedAt.IsZero() {
		return nil, errors.New("snapshot has no fetched_at")
	}
	s.index()
	return &s, nil
}

// WriteSnapshot stores s at path atomically: it writes a temporary file in
// the same directory, fsyncs it, renames it over path and fsyncs the
// directory, so a crash leaves either the old or the new snapshot. The file
// holds no secrets (senders, domains and the public API key only).
func WriteSnapshot(path string, s *Snapshot) (err error) {
	data, err := EncodeSnapshot(s)
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
