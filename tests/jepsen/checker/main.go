// Command checker reads a Jepsen-style JSON Lines history of KV v2 operations (written by
// tests/jepsen/history.rs) and checks it for linearizability with porcupine, one key at a
// time (P-compositionality): a history is linearizable iff each key's sub-history is.
//
// Each line is one event: {"process":P,"type":"invoke|ok|fail|info","f":"read|write|cas|delete|
// token-create|token-lookup","key":K,"value":V,"expect":E,"version":N,"matched":B,"time":NS}. A process has at most one
// operation in flight; its completion is the next event of the same process. "fail" means the
// operation certainly did not happen (it is dropped); "info" (a timeout, an ambiguous error) and
// an invoke with no completion may or may not have happened: their return time is infinite.
// An "ok" with "late":true is an indeterminate write that the final state shows took effect
// (tests/jepsen/durability.rs resolves them): its result is known, its return time infinite.
//
// Model, per key: the latest version number and its value (version 0, value -1 = absent).
// write -> ok with the new version (must be the latest + 1); cas(expect) -> ok with the new
// version when the latest version equals expect, else ok with matched=false and no change; read
// -> (version, value) of the latest version; delete (KV v2 soft delete of the latest version)
// -> the latest version stays, its value is gone (-1; a read then answers 404 with that
// version), and it changes nothing on a key never written.
//
// Tokens use the same state under a key the workload gives each token: token-create makes it
// exist (version 1, value 1; only once, on a fresh key), token-lookup reads it (version 1,
// value 1 when found; 0, -1 when the server says "bad token"). So a token acknowledged as
// created must be found by every lookup that begins after that.
//
// Exit status: 0 linearizable, 1 not linearizable (names the key, writes porcupine's HTML
// visualization of that key to -html-dir), 2 bad input, 3 the check timed out (unknown).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

type event struct {
	Process int64   `json:"process"`
	Type    string  `json:"type"`
	F       string  `json:"f"`
	Key     string  `json:"key"`
	Value   *int64  `json:"value"`
	Expect  *int64  `json:"expect"`
	Version *int64  `json:"version"`
	Matched *bool   `json:"matched"`
	Time    int64   `json:"time"`
	Node    *int64  `json:"node"`
	Error   *string `json:"error"`
	Late    *bool   `json:"late"`
}

type input struct {
	F      string
	Value  int64
	Expect int64
	// Not part of the model: where the operation ran, for the explanation of a violation.
	Process int64
	Node    int64
	Error   string
}

type output struct {
	Unknown bool
	Version int64
	Value   int64
	Matched bool
}

type state struct {
	Version int64
	Value   int64
}

func step(st, in, out interface{}) (bool, interface{}) {
	s := st.(state)
	i := in.(input)
	o := out.(output)
	switch i.F {
	case "read", "token-lookup":
		if o.Unknown {
			return true, s
		}
		return o.Version == s.Version && o.Value == s.Value, s
	case "delete":
		next := s
		if s.Version > 0 {
			next.Value = -1
		}
		return true, next
	case "token-create":
		next := state{Version: 1, Value: 1}
		if o.Unknown {
			return true, next
		}
		return s.Version == 0, next
	case "write":
		next := state{Version: s.Version + 1, Value: i.Value}
		if o.Unknown {
			return true, next
		}
		return o.Version == next.Version, next
	case "cas":
		applies := s.Version == i.Expect
		next := s
		if applies {
			next = state{Version: s.Version + 1, Value: i.Value}
		}
		if o.Unknown {
			return true, next
		}
		if o.Matched {
			return applies && o.Version == next.Version, next
		}
		return !applies, s
	}
	return false, s
}

func describeOp(in, out interface{}) string {
	i := in.(input)
	o := out.(output)
	res := fmt.Sprintf("v%d=%d", o.Version, o.Value)
	if o.Unknown {
		res = "?"
	}
	switch i.F {
	case "read":
		return "read -> " + res
	case "token-lookup":
		switch {
		case o.Unknown:
			return "lookup -> ?"
		case o.Value < 0:
			return "lookup -> bad token"
		}
		return "lookup -> found"
	case "token-create":
		if o.Unknown {
			return "create -> ?"
		}
		return "create -> ok"
	case "delete":
		if o.Unknown {
			return "delete -> ?"
		}
		return "delete -> ok"
	case "write":
		if o.Unknown {
			return fmt.Sprintf("write(%d) -> ?", i.Value)
		}
		return fmt.Sprintf("write(%d) -> v%d", i.Value, o.Version)
	case "cas":
		switch {
		case o.Unknown:
			return fmt.Sprintf("cas(v%d, %d) -> ?", i.Expect, i.Value)
		case o.Matched:
			return fmt.Sprintf("cas(v%d, %d) -> v%d", i.Expect, i.Value, o.Version)
		default:
			return fmt.Sprintf("cas(v%d, %d) -> mismatch", i.Expect, i.Value)
		}
	}
	return "?"
}

var model = porcupine.Model{
	Init:              func() interface{} { return state{Version: 0, Value: -1} },
	Step:              step,
	Equal:             func(a, b interface{}) bool { return a.(state) == b.(state) },
	DescribeOperation: describeOp,
	DescribeState: func(st interface{}) string {
		s := st.(state)
		if s.Value < 0 {
			return fmt.Sprintf("v%d (absent)", s.Version)
		}
		return fmt.Sprintf("v%d=%d", s.Version, s.Value)
	},
}

// isRead: the operation changes nothing, so when it has no answer it constrains nothing.
func isRead(f string) bool {
	return f == "read" || f == "token-lookup"
}

func val(p *int64, dflt int64) int64 {
	if p == nil {
		return dflt
	}
	return *p
}

// parse reads the history and returns each key's operations.
func parse(path string) (map[string][]porcupine.Operation, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot open the history %s: %w", path, err)
	}
	defer f.Close()
	type pending struct {
		ev     event
		client int
	}
	inflight := map[int64]pending{}
	clients := map[int64]int{}
	ops := map[string][]porcupine.Operation{}
	add := func(inv event, client int, out output, ret int64, errText *string) {
		in := input{F: inv.F, Value: val(inv.Value, -1), Expect: val(inv.Expect, 0),
			Process: inv.Process, Node: val(inv.Node, -1)}
		if errText != nil {
			in.Error = *errText
		}
		ops[inv.Key] = append(ops[inv.Key], porcupine.Operation{
			ClientId: client, Input: in, Call: inv.Time, Output: out, Return: ret,
		})
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	dropped := 0
	for sc.Scan() {
		line++
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, 0, fmt.Errorf("%s:%d: not a history event (%v); the history must be JSON Lines written by tests/jepsen", path, line, err)
		}
		switch ev.F {
		case "read", "write", "cas", "delete", "token-create", "token-lookup":
		default:
			return nil, 0, fmt.Errorf("%s:%d: unknown operation %q (want read, write, cas, delete, token-create or token-lookup)", path, line, ev.F)
		}
		if ev.Type == "invoke" {
			if _, busy := inflight[ev.Process]; busy {
				return nil, 0, fmt.Errorf("%s:%d: process %d invoked a second operation before the first completed", path, line, ev.Process)
			}
			c, ok := clients[ev.Process]
			if !ok {
				c = len(clients)
				clients[ev.Process] = c
			}
			inflight[ev.Process] = pending{ev: ev, client: c}
			continue
		}
		p, ok := inflight[ev.Process]
		if !ok {
			return nil, 0, fmt.Errorf("%s:%d: %s of process %d with no invoke before it", path, line, ev.Type, ev.Process)
		}
		delete(inflight, ev.Process)
		switch ev.Type {
		case "ok":
			ret := ev.Time
			if ev.Late != nil && *ev.Late {
				ret = math.MaxInt64 // it took effect at some unknown time after its invoke
			}
			add(p.ev, p.client, output{
				Version: val(ev.Version, 0),
				Value:   val(ev.Value, -1),
				Matched: ev.Matched != nil && *ev.Matched,
			}, ret, nil)
		case "fail":
			dropped++
		case "info":
			if isRead(p.ev.F) {
				dropped++ // a read with no answer constrains nothing
			} else {
				add(p.ev, p.client, output{Unknown: true}, math.MaxInt64, ev.Error)
			}
		default:
			return nil, 0, fmt.Errorf("%s:%d: unknown event type %q (want invoke, ok, fail or info)", path, line, ev.Type)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("cannot read the history %s: %w", path, err)
	}
	for _, p := range inflight {
		if !isRead(p.ev.F) {
			add(p.ev, p.client, output{Unknown: true}, math.MaxInt64, nil)
		}
	}
	return ops, dropped, nil
}

func main() {
	history := flag.String("history", "", "JSON Lines history to check")
	htmlDir := flag.String("html-dir", ".", "where to write <key>.html for a key that is not linearizable")
	timeout := flag.Duration("timeout", 60*time.Second, "time limit for each key's check")
	flag.Parse()
	if *history == "" {
		fmt.Fprintln(os.Stderr, "usage: checker -history FILE [-html-dir DIR] [-timeout 60s]")
		os.Exit(2)
	}
	ops, dropped, err := parse(*history)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
	keys := make([]string, 0, len(ops))
	for k := range ops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("history %s: %d keys, %d failed or unanswered reads dropped\n", *history, len(keys), dropped)
	status := 0
	for _, k := range keys {
		started := time.Now()
		res, info := porcupine.CheckOperationsVerbose(model, ops[k], *timeout)
		took := time.Since(started).Round(time.Millisecond)
		switch res {
		case porcupine.Ok:
			fmt.Printf("key %s: %d operations: linearizable (%v)\n", k, len(ops[k]), took)
		case porcupine.Illegal:
			path := filepath.Join(*htmlDir, k+".html")
			if err := porcupine.VisualizePath(model, info, path); err != nil {
				fmt.Fprintf(os.Stderr, "error: cannot write the visualization %s: %v\n", path, err)
				path = "(none)"
			}
			fmt.Printf("NOT LINEARIZABLE: key %s (%d operations); visualization: %s\n", k, len(ops[k]), path)
			explain(ops[k], info)
			status = 1
		default:
			fmt.Printf("UNKNOWN: key %s (%d operations): the check did not finish within %v; use fewer clients, keys with fewer operations, or a longer -timeout\n", k, len(ops[k]), *timeout)
			if status == 0 {
				status = 3
			}
		}
	}
	os.Exit(status)
}

// explain prints, as text (CI logs keep no files), where the longest linearization the
// checker found ends: its last operations, the state they leave, and the operations that
// could come next (those called before the earliest return among the rest), none of which
// the model accepts from that state.
func explain(ops []porcupine.Operation, info porcupine.LinearizationInfo) {
	var longest []int
	for _, partition := range info.PartialLinearizations() {
		for _, l := range partition {
			if len(l) > len(longest) {
				longest = l
			}
		}
	}
	var origin int64 = math.MaxInt64
	for _, op := range ops {
		if op.Call < origin {
			origin = op.Call
		}
	}
	at := func(t int64) string {
		if t == math.MaxInt64 {
			return "never"
		}
		return fmt.Sprintf("%.3fs", float64(t-origin)/1e9)
	}
	line := func(tag string, op porcupine.Operation) {
		in := op.Input.(input)
		extra := ""
		if in.Error != "" {
			e := in.Error
			if len(e) > 160 {
				e = e[:160] + "..."
			}
			extra = " error: " + e
		}
		fmt.Printf("  %s %-28s process %d node %d, called %s, returned %s%s\n",
			tag, describeOp(op.Input, op.Output), in.Process, in.Node, at(op.Call), at(op.Return), extra)
	}
	st := model.Init()
	done := map[int]bool{}
	for _, id := range longest {
		_, st = model.Step(st, ops[id].Input, ops[id].Output)
		done[id] = true
	}
	fmt.Printf("  longest linearization: %d of %d operations; its last ones:\n", len(longest), len(ops))
	from := len(longest) - 8
	if from < 0 {
		from = 0
	}
	for _, id := range longest[from:] {
		line("ok  ", ops[id])
	}
	fmt.Printf("  state after it: %s; no operation that could come next fits:\n", model.DescribeState(st))
	var first int64 = math.MaxInt64
	for id, op := range ops {
		if !done[id] && op.Return < first {
			first = op.Return
		}
	}
	var next []int
	for id, op := range ops {
		if !done[id] && op.Call <= first {
			next = append(next, id)
		}
	}
	sort.Slice(next, func(a, b int) bool { return ops[next[a]].Call < ops[next[b]].Call })
	for i, id := range next {
		if i == 12 {
			fmt.Printf("  ... and %d more\n", len(next)-12)
			break
		}
		line("next", ops[id])
	}
}
