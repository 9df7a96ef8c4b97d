package upstream

import (
	"sort"
)

type apiError = map[string]any

func errOf(id, msg string) apiError { return apiError{"id": id, "message": msg} }

// call runs one Pryv method for user name with access a. It returns the
// result, the HTTP status, or an error object.
func (s *Server) call(name string, a *Access, method string, p map[string]any) (map[string]any, int, apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[name]
	if s.tokens[a.Token] == nil {
		return nil, 403, errOf("invalid-access-token", "Cannot find access from token.")
	}
	now := nowSeconds()
	id, _ := p["id"].(string)
	switch method {
	case "getAccessInfo":
		info := map[string]any{"id": a.ID, "token": a.Token, "type": a.Type, "name": a.Name,
			"created": a.Created, "createdBy": a.CreatedBy, "modified": a.Modified, "modifiedBy": a.ModifiedBy,
			"user": map[string]any{"username": name}}
		if a.Type != "personal" {
			info["permissions"] = a.Permissions
		}
		return info, 200, nil

	case "events.get":
		return map[string]any{"events": sorted(u.events)}, 200, nil
	case "events.getOne":
		if e := u.events[id]; e != nil {
			return map[string]any{"event": e}, 200, nil
		}
		return nil, 404, errOf("unknown-resource", `Unknown event "`+id+`"`)
	case "events.create":
		_, hasIDs := p["streamIds"].([]any)
		_, hasID := p["streamId"].(string)
		if _, ok := p["type"].(string); !ok || (!hasIDs && !hasID) {
			return nil, 400, errOf("invalid-parameters-format", "The parameters' format is invalid: an event needs streamIds and type.")
		}
		e := map[string]any{}
		for k, v := range p {
			e[k] = v
		}
		e["id"] = s.newID()
		e["time"] = now
		e["created"], e["createdBy"], e["modified"], e["modifiedBy"] = now, a.ID, now, a.ID
		u.events[e["id"].(string)] = e
		return map[string]any{"event": e}, 201, nil
	case "events.update", "events.addAttachment":
		e := u.events[id]
		if e == nil {
			return nil, 404, errOf("unknown-resource", `Unknown event "`+id+`"`)
		}
		upd, _ := p["update"].(map[string]any)
		for k, v := range upd {
			if k != "id" {
				e[k] = v
			}
		}
		if files, ok := p["attachments"].([]any); ok {
			prior, _ := e["attachments"].([]any)
			e["attachments"] = append(prior, files...)
		}
		e["modified"], e["modifiedBy"] = now, a.ID
		return map[string]any{"event": e}, 200, nil
	case "events.delete":
		e := u.events[id]
		if e == nil {
			return nil, 404, errOf("unknown-resource", `Unknown event "`+id+`"`)
		}
		if e["trashed"] == true {
			delete(u.events, id)
			return map[string]any{"eventDeletion": map[string]any{"id": id}}, 200, nil
		}
		e["trashed"] = true
		return map[string]any{"event": e}, 200, nil
	case "events.deleteAttachment":
		e := u.events[id]
		if e == nil {
			return nil, 404, errOf("unknown-resource", `Unknown event "`+id+`"`)
		}
		return map[string]any{"event": e}, 200, nil

	case "streams.get":
		return map[string]any{"streams": sorted(u.streams)}, 200, nil
	case "streams.create":
		sid, _ := p["id"].(string)
		nm, _ := p["name"].(string)
		if nm == "" {
			return nil, 400, errOf("invalid-parameters-format", "The parameters' format is invalid: a stream needs a name.")
		}
		if sid == "" {
			sid = s.newID()
		}
		if u.streams[sid] != nil {
			return nil, 409, map[string]any{"id": "item-already-exists", "message": `A stream with id "` + sid + `" already exists`, "data": map[string]any{"id": sid}}
		}
		st := map[string]any{"id": sid, "name": nm, "parentId": p["parentId"], "created": now, "createdBy": a.ID, "modified": now, "modifiedBy": a.ID}
		u.streams[sid] = st
		return map[string]any{"stream": st}, 201, nil
	case "streams.update":
		st := u.streams[id]
		if st == nil {
			return nil, 404, errOf("unknown-resource", `Unknown stream "`+id+`"`)
		}
		upd, _ := p["update"].(map[string]any)
		for k, v := range upd {
			if k != "id" {
				st[k] = v
			}
		}
		return map[string]any{"stream": st}, 200, nil
	case "streams.delete":
		if u.streams[id] == nil {
			return nil, 404, errOf("unknown-resource", `Unknown stream "`+id+`"`)
		}
		delete(u.streams, id)
		return map[string]any{"streamDeletion": map[string]any{"id": id}}, 200, nil

	case "accesses.get":
		var list []any
		for _, x := range u.accesses {
			if a.Type == "personal" || x.CreatedBy == a.ID || x.ID == a.ID {
				list = append(list, x)
			}
		}
		sort.Slice(list, func(i, j int) bool { return list[i].(*Access).ID < list[j].(*Access).ID })
		return map[string]any{"accesses": list}, 200, nil
	case "accesses.create":
		if a.Type == "shared" {
			return nil, 403, errOf("forbidden", "You cannot access accesses.create resource using the given access")
		}
		nm, _ := p["name"].(string)
		typ, _ := p["type"].(string)
		if typ == "" {
			typ = "shared"
		}
		if nm == "" || (typ != "app" && typ != "shared") {
			return nil, 400, errOf("invalid-parameters-format", "The parameters' format is invalid: an access needs a name and type app or shared.")
		}
		na := &Access{ID: s.newID(), Token: s.newID(), Type: typ, Name: nm, Created: now, CreatedBy: a.ID, Modified: now, ModifiedBy: a.ID,
			Permissions: []Permission{{StreamID: "diary", Level: "manage"}}}
		u.accesses[na.ID] = na
		s.tokens[na.Token] = na
		return map[string]any{"access": na}, 201, nil
	case "accesses.update":
		x := u.accesses[id]
		if x == nil {
			return nil, 404, errOf("unknown-resource", `Unknown access "`+id+`"`)
		}
		upd, _ := p["update"].(map[string]any)
		if nm, ok := upd["name"].(string); ok {
			x.Name = nm
		}
		x.Modified, x.ModifiedBy = now, a.ID
		return map[string]any{"access": x}, 200, nil
	case "accesses.delete":
		x := u.accesses[id]
		if x == nil {
			return nil, 404, errOf("unknown-resource", `Unknown access "`+id+`"`)
		}
		if a.Type != "personal" && x.ID != a.ID && x.CreatedBy != a.ID {
			return nil, 403, errOf("forbidden", "You cannot delete this access.")
		}
		delete(u.accesses, id)
		delete(s.tokens, x.Token)
		return map[string]any{"accessDeletion": map[string]any{"id": id}}, 200, nil

	case "account.get":
		return map[string]any{"account": u.account}, 200, nil
	case "account.update", "account.changePassword":
		if a.Type != "personal" {
			return nil, 403, errOf("forbidden", "You cannot access "+method+" resource using the given access")
		}
		if upd, ok := p["update"].(map[string]any); ok {
			for k, v := range upd {
				u.account[k] = v
			}
		}
		return map[string]any{"account": u.account}, 200, nil
	}
	return nil, 400, errOf("invalid-method", `Invalid method "`+method+`"`)
}

func sorted(m map[string]map[string]any) []any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}
