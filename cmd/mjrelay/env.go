package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/mjrelay/mjrelay/relay/config"
)

// Environment overrides let a container run from the image's config
// (dist/docker.toml) with its own addresses and logins, without a config
// file of its own:
//
//	MJRELAY_DATA_DIR            data_dir
//	MJRELAY_SMTP_LISTEN         smtp.listen
//	MJRELAY_SMTP_LISTEN_TLS     smtp.listen_tls ("" = off)
//	MJRELAY_HTTP_LISTEN         http.listen ("" = off)
//	MJRELAY_TRUSTED_NETWORKS    smtp.trusted_networks (comma-separated; "" = none)
//	MJRELAY_SMTP_USER           one more [[smtp.users]] login, with
//	MJRELAY_SMTP_PASSWORD_HASH    its bcrypt hash, or
//	MJRELAY_SMTP_PASSWORD         its password (hashed at start, never logged)
//	MJRELAY_HTTP_USER           one more [[http.users]] login, with
//	MJRELAY_HTTP_PASSWORD_HASH    its bcrypt hash, or
//	MJRELAY_HTTP_PASSWORD         its password
//
// A variable that is set replaces the file's value, even when empty; the
// login variables count only when not empty. They are applied to the
// file's TOML before it is parsed, so the configuration's validation
// judges the result exactly as if the file said it (a non-loopback
// http.listen still needs an HTTP login).

// envSetting maps one variable to a key of the file.
type envSetting struct {
	name  string
	table string // "" for a top-level key
	key   string
}

// envLogin is a login given by variables: the user, the hash and the
// password variables' names, and the array of tables it joins.
type envLogin struct {
	user, hash, password string
	table                string
}

// loadConfig reads the configuration file with the environment's
// overrides and returns it with the names of the variables applied.
func loadConfig(path string) (*config.Config, []string, error) {
	return loadConfigEnv(path, os.LookupEnv)
}

func loadConfigEnv(path string, lookup func(string) (string, bool)) (*config.Config, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	doc := map[string]any{}
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	used, err := applyEnv(doc, lookup)
	if err != nil {
		return nil, nil, err
	}
	if len(used) == 0 {
		cfg, err := config.Parse(data)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return cfg, nil, nil
	}
	var merged bytes.Buffer
	if err := toml.NewEncoder(&merged).Encode(doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg, err := config.Parse(merged.Bytes())
	if err != nil {
		return nil, nil, fmt.Errorf("%s with %s from the environment: %w", path, strings.Join(used, ", "), err)
	}
	return cfg, used, nil
}

// applyEnv writes the overrides into doc (a decoded TOML document) and
// returns the names of the variables it used, never their values.
func applyEnv(doc map[string]any, lookup func(string) (string, bool)) ([]string, error) {
	var used []string
	settings := []envSetting{
		{"MJRELAY_DATA_DIR", "", "data_dir"},
		{"MJRELAY_SMTP_LISTEN", "smtp", "listen"},
		{"MJRELAY_SMTP_LISTEN_TLS", "smtp", "listen_tls"},
		{"MJRELAY_HTTP_LISTEN", "http", "listen"},
		{"MJRELAY_TRUSTED_NETWORKS", "smtp", "trusted_networks"},
	}
	for _, s := range settings {
		v, ok := lookup(s.name)
		if !ok {
			continue
		}
		t, err := subTable(doc, s.table)
		if err != nil {
			return nil, err
		}
		if s.key == "trusted_networks" {
			t[s.key] = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
		} else {
			t[s.key] = v
		}
		used = append(used, s.name)
	}
	logins := []envLogin{
		{"MJRELAY_SMTP_USER", "MJRELAY_SMTP_PASSWORD_HASH", "MJRELAY_SMTP_PASSWORD", "smtp"},
		{"MJRELAY_HTTP_USER", "MJRELAY_HTTP_PASSWORD_HASH", "MJRELAY_HTTP_PASSWORD", "http"},
	}
	for _, l := range logins {
		names, err := l.apply(doc, lookup)
		if err != nil {
			return nil, err
		}
		used = append(used, names...)
	}
	return used, nil
}

// apply adds the login to doc's [[table.users]] when its variables are set.
func (l envLogin) apply(doc map[string]any, lookup func(string) (string, bool)) ([]string, error) {
	get := func(name string) string { v, _ := lookup(name); return v }
	user, hash, pw := get(l.user), get(l.hash), get(l.password)
	switch {
	case user == "" && hash == "" && pw == "":
		return nil, nil
	case user == "":
		return nil, fmt.Errorf("%s or %s is set without %s", l.hash, l.password, l.user)
	case hash == "" && pw == "":
		return nil, fmt.Errorf("%s needs %s (from `mjrelay hash-password`) or %s", l.user, l.hash, l.password)
	case hash != "" && pw != "":
		return nil, fmt.Errorf("set %s or %s, not both", l.hash, l.password)
	}
	used := []string{l.user, l.hash}
	if pw != "" {
		used[1] = l.password
		if l.table == "smtp" && !asciiPassword(pw) {
			return nil, fmt.Errorf("%s: Odoo (Python smtplib) can only send ASCII passwords", l.password)
		}
		h, err := hashPassword(pw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.password, err)
		}
		hash = h
	}
	t, err := subTable(doc, l.table)
	if err != nil {
		return nil, err
	}
	var users []map[string]any
	switch v := t["users"].(type) {
	case nil:
	case []map[string]any:
		users = v
	case []any: // an inline array of tables
		for _, u := range v {
			m, ok := u.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s.users is not an array of tables", l.table)
			}
			users = append(users, m)
		}
	default:
		return nil, fmt.Errorf("%s.users is not an array of tables", l.table)
	}
	t["users"] = append(users, map[string]any{"username": user, "password_hash": hash})
	return used, nil
}

// subTable returns doc's table name ("" = doc itself), created if missing.
func subTable(doc map[string]any, name string) (map[string]any, error) {
	if name == "" {
		return doc, nil
	}
	switch v := doc[name].(type) {
	case nil:
		t := map[string]any{}
		doc[name] = t
		return t, nil
	case map[string]any:
		return v, nil
	}
	return nil, errors.New(name + " is not a table")
}
