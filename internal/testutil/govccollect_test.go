package testutil

import "testing"

// TestGovcCollected reads govc's stream of objects, an unset property
// included, and refuses output that is not that stream.
func TestGovcCollected(t *testing.T) {
	out := `{"kind":"enter","obj":{"type":"VirtualMachine","value":"vm-22"},"changeSet":[{"name":"name","op":"assign","val":"a"},{"name":"guest.ipAddress","op":"assign","val":null}]}
{"kind":"enter","obj":{"type":"VirtualMachine","value":"vm-26"},"changeSet":[{"name":"name","op":"assign","val":"b"},{"name":"guest.ipAddress","op":"assign","val":"10.77.0.2"}]}`
	objs, err := GovcCollected([]byte(out))
	if err != nil || len(objs) != 2 || objs[0]["name"] != "a" || objs[0]["guest.ipAddress"] != nil || objs[1]["guest.ipAddress"] != "10.77.0.2" {
		t.Fatalf("%v %v", objs, err)
	}
	if _, err := GovcCollected([]byte(`{"changeSet": 3}`)); err == nil {
		t.Error("a changeSet that is not a list decoded")
	}
}
