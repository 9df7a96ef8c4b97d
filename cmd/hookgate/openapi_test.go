package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/pb33f/go-yaml"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	validatorconfig "github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
)

// openAPIFile is the OpenAPI document of the webhooks API, and
// adminOpenAPIFile that of the operator API, from this package's
// directory.
const (
	openAPIFile      = "../../docs/openapi.json"
	adminOpenAPIFile = "../../docs/admin-openapi.json"
)

// loadOpenAPI parses the OpenAPI document file with libopenapi and
// builds its OpenAPI 3 model; any error (a reference that does not
// resolve, say) fails the test.
func loadOpenAPI(t testing.TB, file string) (libopenapi.Document, *v3.Document) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := datamodel.NewDocumentConfiguration()
	cfg.Logger = slog.New(slog.DiscardHandler) // errors are returned, and reported below
	doc, err := libopenapi.NewDocumentWithConfiguration(raw, cfg)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return doc, &model.Model
}

// openAPIValidator returns a validator of requests and answers against
// docs/openapi.json, which checks formats (uri) too.
func openAPIValidator(t testing.TB) (validator.Validator, *v3.Document) {
	t.Helper()
	return openAPIValidatorOf(t, openAPIFile)
}

// openAPIValidatorOf returns a validator of requests and answers against
// the OpenAPI document file, which checks formats (uri) too.
func openAPIValidatorOf(t testing.TB, file string) (validator.Validator, *v3.Document) {
	t.Helper()
	doc, model := loadOpenAPI(t, file)
	v, errs := validator.NewValidator(doc, validatorconfig.WithFormatAssertions())
	for _, err := range errs {
		t.Errorf("%s: %v", file, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return v, model
}

// describe turns validation errors into lines: what failed, where, why.
func describe(errs []*errors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  %s: %s", e.Message, e.Reason)
		if e.SpecLine > 0 {
			fmt.Fprintf(&b, " (document line %d)", e.SpecLine)
		}
		for _, f := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n    %s %s: %s", f.FieldPath, f.KeywordLocation, f.Reason)
		}
	}
	return b.String()
}

// operation is one operation of the document, with where it is.
type operation struct {
	where string // "GET /{username}/webhooks", "webhooks notification POST", ...
	op    *v3.Operation
}

// operations lists every operation of the document: its paths, its
// webhooks and the callbacks of both.
func operations(model *v3.Document) []operation {
	var out []operation
	var add func(where string, item *v3.PathItem, method bool)
	add = func(where string, item *v3.PathItem, method bool) {
		for m, op := range item.GetOperations().FromOldest() {
			w := strings.ToUpper(m) + " " + where
			if !method {
				w = where + " " + strings.ToUpper(m)
			}
			out = append(out, operation{w, op})
			for name, cb := range op.Callbacks.FromOldest() {
				for expr, cbItem := range cb.Expression.FromOldest() {
					add(w+" callback "+name+" "+expr, cbItem, false)
				}
			}
		}
	}
	if model.Paths != nil {
		for path, item := range model.Paths.PathItems.FromOldest() {
			add(path, item, true)
		}
	}
	for name, item := range model.Webhooks.FromOldest() {
		add("webhooks "+name, item, false)
	}
	return out
}

// TestOpenAPIDocument checks docs/openapi.json with libopenapi: it is an
// OpenAPI 3.1 document that validates against the specification's
// schema, every reference resolves, it uses no keyword of OpenAPI 3.0's
// schema dialect, every operation has a unique camelCase operationId
// (Pryv's method id where there is one), every example matches its
// schema, and the notification is documented as a webhook with its
// Standard Webhooks headers. TestOperationsDocuments checks real answers
// against it.
func TestOpenAPIDocument(t *testing.T) {
	model, ops, checked := checkOpenAPIDocument(t, openAPIFile)

	// operationIds: Pryv's method ids.
	pryv := map[string]string{
		"GET /{username}/webhooks":                     "webhooksGet",
		"POST /{username}/webhooks":                    "webhooksCreate",
		"GET /{username}/webhooks/{id}":                "webhooksGetOne",
		"PUT /{username}/webhooks/{id}":                "webhooksUpdate",
		"DELETE /{username}/webhooks/{id}":             "webhooksDelete",
		"POST /{username}/webhooks/{id}/test":          "webhooksTest",
		"POST /{username}/webhooks/{id}/rotate-secret": "webhooksRotateSecret",
		"POST /{username}/":                            "callBatch",
	}
	for _, o := range ops {
		if want, ok := pryv[o.where]; ok && o.op.OperationId != want {
			t.Errorf("%s: operationId %q; want %q", o.where, o.op.OperationId, want)
		}
	}

	// The notification: a webhook, POST, with the Standard Webhooks
	// headers, none required (unsigned webhooks send none).
	notif := model.Webhooks.GetOrZero("notification")
	if notif == nil || notif.Post == nil || notif.Post.RequestBody == nil {
		t.Fatal(`webhooks has no "notification" POST with a body`)
	}
	headers := map[string]bool{}
	for _, p := range notif.Post.Parameters {
		if p.In == "header" {
			headers[p.Name] = p.Required != nil && *p.Required
		}
	}
	for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		if required, ok := headers[h]; !ok || required {
			t.Errorf("the notification's header %s: documented %v, required %v; want documented, not required", h, ok, required)
		}
	}
	if checked < 10 {
		t.Errorf("only %d examples checked", checked)
	}
}

// TestAdminOpenAPIDocument checks docs/admin-openapi.json, the operator
// API's document, as TestOpenAPIDocument checks the webhooks API's: an
// OpenAPI 3.1 document that validates, without OpenAPI 3.0 keywords,
// whose examples match their schemas; and it documents each route of
// admin.API.Handler once, under its operationId, behind the bearer
// scheme, with the error answers the route gives. TestOperatorAPIAndAlerts
// checks real requests and answers against it.
func TestAdminOpenAPIDocument(t *testing.T) {
	model, ops, checked := checkOpenAPIDocument(t, adminOpenAPIFile)
	if checked < 5 {
		t.Errorf("only %d examples checked", checked)
	}
	if !strings.HasPrefix(model.Info.Title, "hookgate") || len(model.Servers) == 0 || model.Servers[0].URL != "http://127.0.0.1:9090" {
		t.Errorf("info %q, servers %v; want hookgate's, at the default -ops-listen", model.Info.Title, model.Servers)
	}

	// Each route once, under its operationId, with its statuses.
	want := map[string]struct {
		id       string
		statuses []string
	}{
		"GET /admin/webhooks":                  {"adminListWebhooks", []string{"200", "400", "401", "404", "503"}},
		"GET /admin/webhooks/{id}":             {"adminGetWebhook", []string{"200", "401", "404", "503"}},
		"POST /admin/webhooks/{id}/deactivate": {"adminDeactivateWebhook", []string{"200", "401", "404", "500", "503"}},
		"POST /admin/webhooks/{id}/reactivate": {"adminReactivateWebhook", []string{"200", "401", "404", "500", "503"}},
		"POST /admin/webhooks/{id}/redeliver":  {"adminRedeliver", []string{"200", "401", "404", "409", "503"}},
		"POST /admin/hosts/{host}/deactivate":  {"adminDeactivateHost", []string{"200", "401", "404", "500", "503"}},
	}
	ids := map[string]int{}
	for _, o := range ops {
		ids[o.op.OperationId]++
		w, ok := want[o.where]
		if !ok {
			t.Errorf("%s (%s): not a route of the operator API", o.where, o.op.OperationId)
			continue
		}
		if o.op.OperationId != w.id {
			t.Errorf("%s: operationId %q; want %q", o.where, o.op.OperationId, w.id)
		}
		var got []string
		for code := range o.op.Responses.Codes.KeysFromOldest() {
			got = append(got, code)
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(w.statuses, " ") {
			t.Errorf("%s: statuses %v; want %v", o.where, got, w.statuses)
		}
		if o.op.Responses.Default != nil {
			t.Errorf("%s: a default answer; every status is documented", o.where)
		}
		// The bearer scheme: the document's, not lifted by the operation.
		if o.op.Security != nil {
			t.Errorf("%s: its own security; the document's applies to every operation", o.where)
		}
	}
	for _, w := range want {
		if ids[w.id] != 1 {
			t.Errorf("operationId %s: %d operations; want 1", w.id, ids[w.id])
		}
	}
	bearer := false
	if len(model.Security) == 1 && model.Security[0].Requirements.Len() == 1 {
		for name := range model.Security[0].Requirements.KeysFromOldest() {
			s := model.Components.SecuritySchemes.GetOrZero(name)
			bearer = s != nil && s.Type == "http" && strings.EqualFold(s.Scheme, "bearer")
		}
	}
	if !bearer {
		t.Error("the document's security is not the bearer scheme alone")
	}
}

// checkOpenAPIDocument checks the OpenAPI document file with libopenapi:
// it is an OpenAPI 3.1 document that validates against the
// specification's schema, every reference resolves, it uses no keyword
// of OpenAPI 3.0's schema dialect, every operation has a unique
// camelCase operationId, and every example matches its schema. It
// returns the model, its operations and how many examples it checked.
func checkOpenAPIDocument(t *testing.T, file string) (*v3.Document, []operation, int) {
	t.Helper()
	doc, model := loadOpenAPI(t, file)
	if !strings.HasPrefix(model.Version, "3.1.") {
		t.Errorf("openapi is %q; want 3.1.x", model.Version)
	}
	v, errs := validator.NewValidator(doc)
	for _, err := range errs {
		t.Errorf("validator: %v", err)
	}
	if v != nil {
		if ok, verrs := v.ValidateDocument(); !ok {
			t.Errorf("%s is not a valid OpenAPI document:%s", file, describe(verrs))
		}
	}

	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	for _, p := range openAPI30Keywords(tree, "#", "") {
		t.Errorf("%s: an OpenAPI 3.0 schema keyword; 3.1 uses type arrays (or a null type) and numeric exclusiveMinimum/exclusiveMaximum", p)
	}

	// operationIds: present, unique, camelCase.
	camel := regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	byID := map[string]string{}
	ops := operations(model)
	for _, o := range ops {
		switch id := o.op.OperationId; {
		case id == "":
			t.Errorf("%s has no operationId", o.where)
		case !camel.MatchString(id):
			t.Errorf("%s: operationId %q is not camelCase", o.where, id)
		case byID[id] != "":
			t.Errorf("operationId %q is used by %s and %s", id, byID[id], o.where)
		default:
			byID[id] = o.where
		}
	}

	// Every example matches its schema.
	sv := schema_validation.NewSchemaValidator(validatorconfig.WithFormatAssertions())
	checked := 0
	done := map[*yaml.Node]bool{} // an example reached through several references is checked once
	check := func(where string, schema *base.SchemaProxy, example *yaml.Node) {
		if schema == nil || example == nil || done[example] {
			return
		}
		done[example] = true
		s := schema.Schema()
		if s == nil {
			t.Errorf("%s: the schema does not build: %v", where, schema.GetBuildError())
			return
		}
		var value any
		if err := example.Decode(&value); err != nil {
			t.Errorf("%s: example: %v", where, err)
			return
		}
		b, err := json.Marshal(value)
		if err != nil {
			t.Errorf("%s: example: %v", where, err)
			return
		}
		checked++
		if ok, verrs := sv.ValidateSchemaBytesWithVersion(s, b, 3.1); !ok {
			t.Errorf("%s: the example %s does not match its schema:%s", where, b, describe(verrs))
		}
	}
	content := func(where string, c *orderedmap.Map[string, *v3.MediaType]) {
		for ct, mt := range c.FromOldest() {
			check(where+" "+ct+" example", mt.Schema, mt.Example)
			for name, ex := range mt.Examples.FromOldest() {
				check(where+" "+ct+" examples "+name, mt.Schema, ex.Value)
			}
		}
	}
	params := func(where string, ps []*v3.Parameter) {
		for _, p := range ps {
			check(where+" parameter "+p.Name+" example", p.Schema, p.Example)
			for name, ex := range p.Examples.FromOldest() {
				check(where+" parameter "+p.Name+" examples "+name, p.Schema, ex.Value)
			}
		}
	}
	for _, o := range ops {
		params(o.where, o.op.Parameters)
		if o.op.RequestBody != nil {
			content(o.where+" request", o.op.RequestBody.Content)
		}
		if o.op.Responses != nil {
			for code, r := range o.op.Responses.Codes.FromOldest() {
				content(o.where+" "+code, r.Content)
			}
		}
	}
	if c := model.Components; c != nil {
		for name, r := range c.Responses.FromOldest() {
			content("components responses "+name, r.Content)
		}
		for name, p := range c.Parameters.FromOldest() {
			params("components parameters "+name, []*v3.Parameter{p})
		}
		for name, sp := range c.Schemas.FromOldest() {
			schemaExamples(check, "components schemas "+name, sp, 0)
		}
	}
	return model, ops, checked
}

// schemaExamples checks the examples of a schema and of its properties
// and items, depth levels down.
func schemaExamples(check func(string, *base.SchemaProxy, *yaml.Node), where string, sp *base.SchemaProxy, depth int) {
	if sp == nil || depth > 4 || sp.IsReference() && depth > 0 {
		return
	}
	s := sp.Schema()
	if s == nil {
		check(where, sp, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}) // reports the build error
		return
	}
	for i, ex := range s.Examples {
		check(fmt.Sprintf("%s examples[%d]", where, i), sp, ex)
	}
	var names []string
	for name := range s.Properties.KeysFromOldest() {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		schemaExamples(check, where+" ."+name, s.Properties.GetOrZero(name), depth+1)
	}
	if s.Items != nil && s.Items.IsA() {
		schemaExamples(check, where+" items", s.Items.A, depth+1)
	}
}

// openAPI30Keywords returns where the JSON tree uses OpenAPI 3.0 schema
// keywords that 3.1 dropped: nullable, and boolean exclusiveMinimum or
// exclusiveMaximum. parent is the key tree is under: the keys of a
// properties map are names, not keywords.
func openAPI30Keywords(tree any, at, parent string) []string {
	var out []string
	switch v := tree.(type) {
	case map[string]any:
		names := parent == "properties" || parent == "patternProperties" || parent == "$defs" ||
			parent == "examples" || parent == "example"
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !names {
				_, isBool := v[k].(bool)
				if k == "nullable" || (k == "exclusiveMinimum" || k == "exclusiveMaximum") && isBool {
					out = append(out, at+"/"+k)
				}
			}
			if parent == "example" || parent == "examples" && k == "value" {
				continue // example values are data
			}
			out = append(out, openAPI30Keywords(v[k], at+"/"+k, k)...)
		}
	case []any:
		for i, x := range v {
			out = append(out, openAPI30Keywords(x, fmt.Sprintf("%s/%d", at, i), parent)...)
		}
	}
	return out
}
