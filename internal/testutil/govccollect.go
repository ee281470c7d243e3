package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// GovcCollected decodes what `govc object.collect -json -type T ROOT
// PROPS...` prints, one JSON object per managed object found, each with
// its changeSet: the properties of each object, by property name (an
// unset property is nil).
func GovcCollected(out []byte) ([]map[string]any, error) {
	var objs []map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var u struct {
			ChangeSet []struct {
				Name string `json:"name"`
				Val  any    `json:"val"`
			} `json:"changeSet"`
		}
		if err := dec.Decode(&u); err != nil {
			return nil, fmt.Errorf("govc object.collect output: %w", err)
		}
		props := map[string]any{}
		for _, c := range u.ChangeSet {
			props[c.Name] = c.Val
		}
		objs = append(objs, props)
	}
	return objs, nil
}
