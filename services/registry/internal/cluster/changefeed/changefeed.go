// Package changefeed is the change feed of a registry cluster: the Redis channel
// (Channel: the cluster prefix + "changes") on which every replica publishes the
// records it writes and deletes, the format of its messages, and Feed, which
// publishes deletions and follows every replica's changes. The cluster package
// writes records and publishes them in the same Lua call (its fencedPutScript,
// which starts each message with Head and appends one frame per record), and
// offers Feed through Cluster.FollowChanges and Cluster.PublishDeleted.
package changefeed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/recordfmt"
)

// Change is one message of the changes channel: records one replica wrote
// (cluster.FencedPutMany) or deleted (PublishDeleted).
type Change struct {
	// Replica is the ID of the replica that made the change.
	Replica string `json:"replica"`
	// Put holds the records written, as stored.
	Put []registration.Record `json:"put,omitempty"`
	// Deleted holds the refs whose records were deleted.
	Deleted []string `json:"deleted,omitempty"`
}

// followPing is how long Follow waits for a message before it pings the
// server, so that a connection that died silently is found and replaced.
const followPing = 15 * time.Second

// Channel returns the changes channel of the cluster whose keys start with prefix.
func Channel(prefix string) string { return prefix + "changes" }

var errNoClient = errors.New("no redis client")

// The changes channel carries two kinds of message:
//
//   - Records written: fencedPutScript publishes the byte 'P', then the
//     replica's ID and each value it stored, as written (recordfmt.Encode:
//     binary, of any byte), each in a frame: its length in bytes in decimal
//     (no sign, no leading zero), ':', then its bytes. A frame needs no escape
//     and no byte of a value can end it early, whatever the value holds.
//   - Records deleted: PublishDeleted publishes the JSON of a Change with
//     Replica and Deleted.
//
// The release before published the records written as JSON too: the head
// {"replica":<ID>,"put":[ then the stored values, JSON themselves, pasted
// between commas, then ]}. Follow still reads that shape (every
// message that does not start with putMark is read as JSON), so that an old
// replica's writes reach the new ones during a rolling upgrade; an old
// follower cannot read the new shape, and skips it.
const putMark = 'P'

// maxFrameDigits bounds the length of a frame's length: 10 digits is more
// than any Redis string (at most 512 MB) needs.
const maxFrameDigits = 10

// Head is the start of the message fencedPutScript publishes for replica:
// putMark and the frame of its ID. The script appends a frame per record
// written.
func Head(replica string) string {
	return string(appendFrame([]byte{putMark}, replica))
}

// oldHead is the head of the JSON message the release before published for
// replica's writes.
func oldHead(replica string) string {
	id, _ := json.Marshal(replica) // a string always encodes
	return `{"replica":` + string(id) + `,"put":[`
}

// appendFrame appends the frame of s to b: len(s) in decimal, ':', s.
func appendFrame(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// errFrame rejects a message of records written that is not made of frames.
var errFrame = errors.New("bad frame")

// SplitPut reads a message fencedPutScript published: the replica's ID and
// the values written, in order (substrings of msg). It accepts exactly what
// the script writes: putMark, a non-empty ID, at least one value, and frames
// whose lengths are written in the shortest decimal form, with nothing after
// the last.
func SplitPut(msg string) (replica string, values []string, err error) {
	if len(msg) == 0 || msg[0] != putMark {
		return "", nil, fmt.Errorf("%w: no mark %q", errFrame, putMark)
	}
	rest := msg[1:]
	next := func() (string, error) {
		colon := strings.IndexByte(rest, ':')
		if colon <= 0 || colon > maxFrameDigits || (rest[0] == '0' && colon > 1) {
			return "", fmt.Errorf("%w: no length at byte %d", errFrame, len(msg)-len(rest))
		}
		var n int64 // at most maxFrameDigits digits: no overflow
		for _, d := range []byte(rest[:colon]) {
			if d < '0' || d > '9' {
				return "", fmt.Errorf("%w: no length at byte %d", errFrame, len(msg)-len(rest))
			}
			n = n*10 + int64(d-'0')
		}
		if left := int64(len(rest) - colon - 1); n > left {
			return "", fmt.Errorf("%w: %d bytes announced, %d left", errFrame, n, left)
		}
		v := rest[colon+1 : colon+1+int(n)]
		rest = rest[colon+1+int(n):]
		return v, nil
	}
	if replica, err = next(); err != nil {
		return "", nil, err
	}
	if replica == "" {
		return "", nil, fmt.Errorf("%w: empty replica", errFrame)
	}
	for len(rest) > 0 {
		v, err := next()
		if err != nil {
			return "", nil, err
		}
		values = append(values, v)
	}
	if len(values) == 0 {
		return "", nil, fmt.Errorf("%w: no record", errFrame)
	}
	return replica, values, nil
}

// parseChange reads a message of the changes channel (see putMark): records
// written, in either shape, or records deleted. Each record is read by
// recordfmt.Decode, so a value of any version it reads is read; one it
// cannot read, or one without trunk ref, makes the whole message unreadable.
func parseChange(msg string) (Change, error) {
	var (
		ch     Change
		values []string
	)
	if len(msg) > 0 && msg[0] == putMark {
		replica, vs, err := SplitPut(msg)
		if err != nil {
			return Change{}, err
		}
		ch.Replica, values = replica, vs
	} else {
		var m struct {
			Replica string            `json:"replica"`
			Put     []json.RawMessage `json:"put"`
			Deleted []string          `json:"deleted"`
		}
		if err := json.Unmarshal([]byte(msg), &m); err != nil {
			return Change{}, err
		}
		if m.Replica == "" {
			return Change{}, errors.New("no replica")
		}
		ch.Replica, ch.Deleted = m.Replica, m.Deleted
		for _, raw := range m.Put {
			values = append(values, string(raw))
		}
	}
	for i, v := range values {
		rec, err := recordfmt.Decode([]byte(v))
		if err != nil {
			return Change{}, fmt.Errorf("record %d: %w", i, err)
		}
		if rec.TrunkRef == "" {
			return Change{}, fmt.Errorf("record %d: no trunk ref", i)
		}
		ch.Put = append(ch.Put, rec)
	}
	return ch, nil
}

// Feed publishes one replica's deletions on the changes channel and follows
// every replica's changes.
type Feed struct {
	// Client reaches Redis; nil makes every call fail.
	Client redis.UniversalClient
	// Channel is the changes channel (Channel).
	Channel string
	// Replica is this replica's ID.
	Replica string
	// Log receives what Follow skips or retries; nil discards it.
	Log *slog.Logger
}

// PublishDeleted tells Follow that the records of refs were deleted.
// The caller deletes them first: a follower that reads the records after this
// message must not find them.
func (f *Feed) PublishDeleted(ctx context.Context, refs []string) error {
	if len(refs) == 0 {
		return nil
	}
	if f.Client == nil {
		return errNoClient
	}
	msg, err := json.Marshal(Change{Replica: f.Replica, Deleted: refs})
	if err != nil {
		return fmt.Errorf("cluster publish deleted: %w", err)
	}
	if err := f.Client.Publish(ctx, f.Channel, msg).Err(); err != nil {
		return fmt.Errorf("cluster publish deleted: %w", err)
	}
	return nil
}

// Follow subscribes to the records every replica writes or deletes and
// calls onChange with each change, in the order Redis published them, until ctx
// ends; it then returns ctx's error. The records this replica wrote itself are
// not decoded nor passed on (its caller has them already); its deletions are,
// and every other replica's changes. synced is called each time the
// subscription is confirmed: first, and again after each reconnection (Redis
// restarted, connection lost). Changes published while the
// subscription was down are lost, so a caller that keeps a copy of the records
// reads them again on synced; every change published after synced returned
// reaches onChange. Each record is read by recordfmt.Decode, from a message
// of either shape (see putMark); a message that cannot be read, or that holds
// a record that cannot (one of a newer format version, say), is logged and
// skipped whole. The callbacks are called from one goroutine, never at once.
func (f *Feed) Follow(ctx context.Context, synced func(), onChange func(Change)) error {
	if f.Client == nil {
		return errNoClient
	}
	log := f.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	own, oldOwn := Head(f.Replica), oldHead(f.Replica)
	ps := f.Client.Subscribe(ctx, f.Channel)
	// Receive does not watch ctx: closing the subscription ends a blocked read.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer func() {
		if stop() {
			_ = ps.Close()
		}
	}()
	for {
		msg, err := ps.ReceiveTimeout(ctx, followPing)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			// Quiet channel: a ping proves the connection (or breaks it, and the
			// next Receive reconnects and subscribes again).
			_ = ps.Ping(ctx)
			continue
		case err != nil:
			log.Debug("changes subscription interrupted; reconnecting", "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				synced()
			}
		case *redis.Message:
			if strings.HasPrefix(m.Payload, own) || strings.HasPrefix(m.Payload, oldOwn) {
				// This replica's own writes, as fencedPutScript published
				// them (or as the release before did, under the same ID).
				continue
			}
			ch, err := parseChange(m.Payload)
			if err != nil {
				log.Warn("unreadable message on the changes channel skipped", "channel", m.Channel, "bytes", len(m.Payload), "err", err)
				continue
			}
			onChange(ch)
		}
	}
}
