package xmlrpc_test

import (
	"bytes"
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
	"github.com/mjrelay/mjrelay/relay/odoo/xmlrpc"
)

func TestRoundTrip(t *testing.T) {
	params := []any{"db", int64(7), "key", "mail.blacklist", "search",
		[]any{[]any{[]any{"email", "=", "a&b<c>@example.org"}}},
		map[string]any{"context": map[string]any{"active_test": false}, "n": nil, "f": 1.5},
		[]byte("Content-Type: multipart/report\r\n\r\n\x00\xff"), true}
	doc, err := xmlrpc.EncodeCall("execute_kw", params...)
	if err != nil {
		t.Fatal(err)
	}
	method, got, err := xmlrpc.DecodeCall(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if method != "execute_kw" || !reflect.DeepEqual(got, params) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, params)
	}
	resp, _ := xmlrpc.EncodeResponse([]any{int64(3), int64(4)})
	v, err := xmlrpc.DecodeResponse(bytes.NewReader(resp))
	if err != nil || !reflect.DeepEqual(v, []any{int64(3), int64(4)}) {
		t.Fatalf("response: %#v %v", v, err)
	}
	_, err = xmlrpc.DecodeResponse(bytes.NewReader(xmlrpc.EncodeFault(xmlrpc.Fault{Code: 4, String: "AccessError"})))
	var f *xmlrpc.Fault
	if !errors.As(err, &f) || f.Code != 4 || f.String != "AccessError" {
		t.Fatalf("fault: %v", err)
	}
}

func TestRejectsMalformed(t *testing.T) {
	for _, doc := range []string{
		``,
		`<methodResponse>`,
		`<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>`,
		`<methodResponse><params><param><value><int>99999999999</int></value></param></params></methodResponse>`,
		`<methodResponse><params><param><value><boolean>2</boolean></value></param></params></methodResponse>`,
		`<methodResponse><params><param><value><base64>@@@</base64></value></param></params></methodResponse>`,
		`<methodResponse><params><param><value><foo>1</foo></value></param></params></methodResponse>`,
		`<methodResponse><params><param><value><array><value/></array></value></param></params></methodResponse>`,
		`<methodResponse><fault><value><string>x</string></value></fault></methodResponse>`,
		`<methodResponse>junk<params/></methodResponse>`,
		`<methodResponse><params><param><value>` + strings.Repeat("<array><data><value>", 40) + `</value></param></params></methodResponse>`,
	} {
		if _, err := xmlrpc.DecodeResponse(strings.NewReader(doc)); err == nil {
			t.Errorf("accepted %q", doc)
		} else if _, ok := err.(*xmlrpc.Fault); ok {
			t.Errorf("%q read as a fault", doc)
		}
	}
	if _, err := xmlrpc.EncodeCall("x", int64(1)<<40); err == nil {
		t.Error("encoded an int beyond 32 bits")
	}
}

// TestPythonInterop checks the codec against Python's xmlrpc.client, which
// is what Odoo's server (and odoo-mailgate) use.
func TestPythonInterop(t *testing.T) {
	py := odootest.Python3(t)
	// Our call, read by Python.
	doc, _ := xmlrpc.EncodeCall("execute_kw", "db", int64(2), "k\u00e9y", "mail.thread", "message_process",
		[]any{false, []byte("raw\r\nbytes\x00")}, map[string]any{})
	script := `import sys, xmlrpc.client
params, method = xmlrpc.client.loads(sys.stdin.buffer.read())
assert method == 'execute_kw', method
assert params[:5] == ('db', 2, 'k\u00e9y', 'mail.thread', 'message_process'), params
assert params[5][0] is False and params[5][1].data == b'raw\r\nbytes\x00', params[5]
assert params[6] == {}, params[6]
sys.stdout.write(xmlrpc.client.dumps(({'server_version': '17.0', 'server_version_info': [17, 0, 0, 'final', 0, ''], 'ok': True, 'b': xmlrpc.client.Binary(b'\x01\x02'), 'd': 2.25},), methodresponse=True))
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(doc)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python could not read our call: %v\n%s", err, stderr.String())
	}
	v, err := xmlrpc.DecodeResponse(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("reading Python's response: %v\n%s", err, out)
	}
	want := map[string]any{"server_version": "17.0", "server_version_info": []any{int64(17), int64(0), int64(0), "final", int64(0), ""},
		"ok": true, "b": []byte{1, 2}, "d": 2.25}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("Python's response read as %#v", v)
	}
	// Python's fault (as Odoo's /xmlrpc/2 writes AccessDenied).
	out, err = exec.Command(py, "-c", `import sys, xmlrpc.client
sys.stdout.write(xmlrpc.client.dumps(xmlrpc.client.Fault(3, 'Access Denied'), methodresponse=True))`).Output()
	if err != nil {
		t.Fatal(err)
	}
	_, err = xmlrpc.DecodeResponse(bytes.NewReader(out))
	var f *xmlrpc.Fault
	if !errors.As(err, &f) || f.Code != 3 || f.String != "Access Denied" {
		t.Fatalf("Python's fault read as %v", err)
	}
}
