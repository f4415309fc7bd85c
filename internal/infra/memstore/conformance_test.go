package memstore_test

import (
	"testing"

	"github.com/webtracker/tracker/internal/infra/memstore"
	"github.com/webtracker/tracker/internal/infra/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(*testing.T) storetest.Store { return memstore.New() })
}
