package config_test

import (
	"os"
	"testing"

	"github.com/mjrelay/mjrelay/relay/config"
)

func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte("[smtp]\nlisten = \"127.0.0.1:25\"\n[[smtp.users]]\nusername = \"u\"\npassword_hash = \"$2a$04$J9pgQonj1Rf7eqvylTDZy.qjh17rCc0BgWpBnQ47Rpny/EE2gjVia\"\nclass = \"bulk\""))
	f.Add([]byte("[queue]\nretry_min = \"-1s\"\n[routes.bulk]\ntransports = []\nrate = -1"))
	f.Add([]byte("data_dir = \"\"\n[http]\nlisten = \"[::]:80\""))
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := config.Parse(doc)
		if err == nil && (c.DataDir == "" || len(c.Routes.Bulk.Transports) == 0 || c.SMTP.MaxMessageSize <= 0) {
			t.Fatalf("accepted an invalid configuration: %q", doc)
		}
	})
}
