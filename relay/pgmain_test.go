package relay_test

import (
	"testing"

	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
