package vsphere

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Transfer URLs are single use, bound to their token and direction, and
// anything else is 404 (or 405 for another method), never a hang.
func TestTransferURLs(t *testing.T) {
	c := newCore(t)
	v, err := New(t.Context(), c, Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var x transfers
	u, err := x.add(&transfer{path: "/tmp/f", upload: true})
	if err != nil || !strings.HasPrefix(u, "https://*/guestFile?id=1&token=") {
		t.Fatalf("url %q: %v", u, err)
	}
	tok := u[strings.Index(u, "token=")+6:]
	if x.take("1", tok, false) != nil || x.take("1", "bad", true) != nil || x.take("2", tok, true) != nil {
		t.Fatal("a transfer was taken with the wrong direction, token or id")
	}
	if x.take("1", tok, true) == nil || x.take("1", tok, true) != nil {
		t.Fatal("not single use")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	base := "https://" + v.URL().Host + "/guestFile"
	for _, c := range []struct {
		method, query string
		want          int
	}{
		{"GET", "?id=1&token=x", 404},
		{"PUT", "?id=7", 404},
		{"GET", "", 404},
		{"POST", "?id=1&token=x", 405},
	} {
		req, _ := http.NewRequest(c.method, base+c.query, strings.NewReader("data"))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.query, resp.StatusCode, c.want)
		}
	}
}
