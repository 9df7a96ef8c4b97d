package upstream

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func start(t *testing.T) string {
	t.Helper()
	addr, stop, err := New(Options{}).Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return "http://" + addr
}

// testClient talks to the upstream under test; its timeout only turns a
// hang into a failure.
var testClient = &http.Client{Timeout: 30 * time.Second}

func call(t *testing.T, method, url, body string, hdr ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, url, b)
	}
	if _, ok := v["meta"].(map[string]any)["serverTime"].(float64); !ok {
		t.Fatalf("%s %s: no meta.serverTime: %s", method, url, b)
	}
	return resp, v
}

func TestAccessInfoShape(t *testing.T) {
	base := start(t)
	for _, typ := range []string{"personal", "app", "shared"} {
		resp, v := call(t, "GET", base+"/alice/access-info", "", "Authorization", "alice-"+typ)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", typ, resp.StatusCode)
		}
		if v["type"] != typ || v["id"] != "alice-"+typ+"-id" || v["token"] != "alice-"+typ || v["name"] == nil {
			t.Errorf("%s: access-info %v", typ, v)
		}
		if _, nested := v["access"]; nested {
			t.Errorf("%s: access properties must sit at the top level", typ)
		}
		if _, has := v["permissions"]; has != (typ != "personal") {
			t.Errorf("%s: permissions present = %v", typ, has)
		}
		if u := v["user"].(map[string]any); u["username"] != "alice" {
			t.Errorf("%s: user %v", typ, u)
		}
		if resp.Header.Get("Pryv-Access-Id") != "alice-"+typ+"-id" || resp.Header.Get("API-Version") == "" {
			t.Errorf("%s: headers %v", typ, resp.Header)
		}
	}
}

func TestTokenForms(t *testing.T) {
	base := start(t)
	ok := func(url string, hdr ...string) {
		t.Helper()
		if resp, v := call(t, "GET", url, "", hdr...); resp.StatusCode != 200 || v["id"] != "alice-app-id" {
			t.Errorf("%s %v: status %d, %v", url, hdr, resp.StatusCode, v)
		}
	}
	ok(base+"/alice/access-info", "Authorization", "alice-app")
	ok(base+"/alice/access-info", "Authorization", "alice-app caller-id")
	ok(base+"/alice/access-info", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice-app:x")))
	ok(base+"/alice/access-info", "Authorization", "Bearer alice-app")
	ok(base + "/alice/access-info?auth=alice-app")

	fail := func(wantStatus int, wantID, url string, hdr ...string) {
		t.Helper()
		resp, v := call(t, "GET", url, "", hdr...)
		e, _ := v["error"].(map[string]any)
		if resp.StatusCode != wantStatus || e["id"] != wantID || e["message"] == "" {
			t.Errorf("%s %v: status %d, %v; want %d %s", url, hdr, resp.StatusCode, v, wantStatus, wantID)
		}
	}
	fail(401, "invalid-access-token", base+"/alice/access-info")
	fail(403, "invalid-access-token", base+"/alice/access-info", "Authorization", "nope")
	fail(403, "invalid-access-token", base+"/alice/access-info", "Authorization", "carol-app") // another user's token
	fail(404, "unknown-resource", base+"/nobody/access-info", "Authorization", "alice-app")
}

func TestDeletedAccessLosesItsToken(t *testing.T) {
	base := start(t)
	resp, v := call(t, "POST", base+"/alice/accesses", `{"name":"temp","type":"app"}`, "Authorization", "alice-personal", "Content-Type", "application/json")
	if resp.StatusCode != 201 {
		t.Fatalf("create access: %d %v", resp.StatusCode, v)
	}
	a := v["access"].(map[string]any)
	tok, id := a["token"].(string), a["id"].(string)
	if resp, v := call(t, "GET", base+"/alice/access-info", "", "Authorization", tok); resp.StatusCode != 200 || v["type"] != "app" {
		t.Fatalf("new token: %d %v", resp.StatusCode, v)
	}
	if resp, _ := call(t, "DELETE", base+"/alice/accesses/"+id, "", "Authorization", "alice-personal"); resp.StatusCode != 200 {
		t.Fatalf("delete access: %d", resp.StatusCode)
	}
	if resp, _ := call(t, "GET", base+"/alice/access-info", "", "Authorization", tok); resp.StatusCode != 403 {
		t.Fatalf("deleted access still answers %d", resp.StatusCode)
	}
}

func TestBatchResults(t *testing.T) {
	base := start(t)
	resp, v := call(t, "POST", base+"/alice/", `[
		{"method":"events.create","params":{"streamIds":["diary"],"type":"note/txt"}},
		{"method":"events.create","params":{}},
		{"method":"nope.nope","params":{}},
		{"method":"getAccessInfo","params":{}}]`, "Authorization", "alice-app", "Content-Type", "application/json")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	res := v["results"].([]any)
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	has := func(i int, key string) bool { _, ok := res[i].(map[string]any)[key]; return ok }
	if !has(0, "event") || !has(1, "error") || !has(2, "error") || !has(3, "id") {
		t.Fatalf("results %v", res)
	}
}

func TestTrivial(t *testing.T) {
	addr, stop, err := New(Options{Trivial: true}).Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, v := call(t, "POST", "http://"+addr+"/anyone/anything", "{}")
	if resp.StatusCode != 201 || v["events"] == nil {
		t.Fatalf("trivial POST: %d %v", resp.StatusCode, v)
	}
}

func TestManyUsers(t *testing.T) {
	srv := New(Options{Users: 1000})
	if u := srv.Users(); len(u) != 1002 || u[2] != "user00001" || u[1001] != "user01000" {
		t.Fatalf("users %d: %v ... %v", len(u), u[:3], u[len(u)-1])
	}
	addr, stop, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if resp, v := call(t, "GET", "http://"+addr+"/user00777/access-info", "", "Authorization", "user00777-app"); resp.StatusCode != 200 || v["id"] != "user00777-app-id" {
		t.Fatalf("seeded user: %d %v", resp.StatusCode, v)
	}
}
