package diskstore_test

import (
	"testing"

	"github.com/webtracker/tracker/internal/infra/diskstore"
	"github.com/webtracker/tracker/internal/infra/memstore"
	"github.com/webtracker/tracker/internal/infra/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, err := diskstore.Open(diskstore.Options{Dir: t.TempDir()}, memstore.New())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	})
}
