package rules

import "github.com/hookgate/hookgate/core"

// Pryv returns the rule table of the Pryv.io API (PRYV-WEBHOOKS.md §7.2).
// With accountChanges, account and password changes cause accountChanged,
// for which Pryv documents no message.
func Pryv(accountChanges bool) Config {
	write := []string{"POST", "PUT", "DELETE"}
	c := Config{
		FormOverride: true,
		Rules: []Rule{
			// events.create (JSON or multipart), events.update (PUT, or POST
			// multipart adding attachments), events.delete,
			// events.deleteAttachment.
			{Methods: write, Path: "/events/**", Message: core.MsgEventsChanged},
			// High-frequency series writes send no notification.
			{Methods: []string{"POST"}, Path: "/events/*/series"},
			{Methods: write, Path: "/streams/**", Message: core.MsgStreamsChanged},
			// streams.delete: the second deletion of a trashed stream
			// deletes its events, or moves them to the parent
			// (mergeEventsWithParent), and Pryv signals both. The first
			// only trashes the stream: eventsChanged is then one message
			// more than Pryv's, which costs a receiver one needless read.
			{Methods: []string{"DELETE"}, Path: "/streams/*", Message: core.MsgStreamsChanged, Also: []string{core.MsgEventsChanged}},
			{Methods: write, Path: "/accesses/**", Message: core.MsgAccessesChanged},
			// accesses.checkApp only reads.
			{Methods: []string{"POST"}, Path: "/accesses/check-app"},
			// callBatch on the user's root.
			{Methods: []string{"POST"}, Path: "/", Batch: true},
		},
		BatchMethods: map[string]string{
			"events.create":           core.MsgEventsChanged,
			"events.update":           core.MsgEventsChanged,
			"events.delete":           core.MsgEventsChanged,
			"events.deleteAttachment": core.MsgEventsChanged,
			"streams.create":          core.MsgStreamsChanged,
			"streams.update":          core.MsgStreamsChanged,
			"streams.delete":          core.MsgStreamsChanged,
			"accesses.create":         core.MsgAccessesChanged,
			"accesses.update":         core.MsgAccessesChanged,
			"accesses.delete":         core.MsgAccessesChanged,
		},
		BatchAlso: map[string][]string{"streams.delete": {core.MsgEventsChanged}},
	}
	if accountChanges {
		c.Rules = append(c.Rules,
			Rule{Methods: []string{"PUT"}, Path: "/account", Message: core.MsgAccountChanged},
			Rule{Methods: []string{"POST"}, Path: "/account/change-password", Message: core.MsgAccountChanged},
			Rule{Methods: []string{"POST"}, Path: "/account/reset-password", Message: core.MsgAccountChanged},
		)
		c.BatchMethods["account.update"] = core.MsgAccountChanged
		c.BatchMethods["account.changePassword"] = core.MsgAccountChanged
	}
	return c
}
