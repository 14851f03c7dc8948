package sqlite

import (
	"testing"

	"github.com/takedown/takedown/internal/store/storetest"
	"github.com/takedown/takedown/internal/web"
)

var _ web.UserStore = (*DB)(nil)

func TestUserStoreConformance(t *testing.T) {
	storetest.RunUsers(t, func(tb testing.TB) web.UserStore { return openAPITest(tb) })
}
