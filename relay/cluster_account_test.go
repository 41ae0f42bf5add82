package relay_test

import (
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/config"
)

// TestClusterAccountFollowers: one node of a cluster refreshes the Mailjet
// account; the other adopts the snapshot it saves in the database. A
// sender deactivated in Mailjet (a sender the nodes know, so no on-demand
// refresh) is refused by both nodes within a few refreshes.
func TestClusterAccountFollowers(t *testing.T) {
	api := account(t)
	envs, _ := clusterNodes(t, 2, func(c *config.Config) {
		withAPI(api, "enforce")(c)
		c.Policy.Refresh = config.Duration(time.Second)
	})
	msg := "From: ok@example.net\r\nTo: c@example.org\r\nSubject: follow\r\n\r\nhi\r\n"
	for i, e := range envs {
		c := e.client()
		if _, err := send(c, "bounce@example.net", []string{"c@example.org"}, msg); err != nil {
			t.Fatalf("node %d before the change: %v", i+1, err)
		}
		c.Quit()
	}
	if err := api.SetSenderStatus("ok@example.net", "Inactive"); err != nil {
		t.Fatal(err)
	}
	for i, e := range envs {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c := e.client()
			_, err := send(c, "bounce@example.net", []string{"c@example.org"}, msg)
			c.Quit()
			if smtpCode(err) == 550 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d still takes the deactivated sender: %v", i+1, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
