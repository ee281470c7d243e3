package kmsgdump

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzStateJSON: any state.json either opens (and saves back as
// something that opens again) or is refused as corrupt; never a panic.
func FuzzStateJSON(f *testing.F) {
	if b, err := os.ReadFile("testdata/state.json"); err == nil {
		f.Add(b)
	} else {
		f.Fatal(err)
	}
	f.Add([]byte(`{"version":1,"shipped":{"k":null}}`))
	f.Add([]byte(`{"boots":[{"id":"x","start":"bad"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600)
		s, err := OpenStore(dir)
		if err != nil {
			return
		}
		s.View(func(st *State) {
			for _, r := range st.Shipped {
				_ = r
			}
		})
		if err := s.Save(); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s2, err := OpenStore(dir)
		if err != nil {
			t.Fatalf("saved state does not open: %v", err)
		}
		s2.Close()
	})
}
