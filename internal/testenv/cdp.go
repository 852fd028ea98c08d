package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// cdp speaks the Chrome DevTools Protocol over --remote-debugging-pipe:
// Chromium reads commands from its fd 3 and writes replies and events to
// its fd 4, each a JSON message ended by a NUL byte. It is just enough to
// evaluate a script in the page with a user gesture (a click a test
// cannot otherwise make).
type cdp struct {
	w      *os.File // Chromium's fd 3
	rf     *os.File // Chromium's fd 4
	r      *bufio.Reader
	mu     sync.Mutex
	nextID int
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    any             `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// call sends a command and waits for its reply, skipping events.
func (c *cdp) call(session, method string, params any, result any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	id := c.nextID
	b, err := json.Marshal(cdpMessage{ID: id, SessionID: session, Method: method, Params: params})
	if err != nil {
		return err
	}
	if _, err := c.w.Write(append(b, 0)); err != nil {
		return err
	}
	c.rf.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := c.r.ReadBytes(0)
		if err != nil {
			return fmt.Errorf("cdp %s: %w", method, err)
		}
		var m cdpMessage
		if json.Unmarshal(line[:len(line)-1], &m) != nil || m.ID != id {
			continue // an event, or another reply
		}
		if m.Error != nil {
			return fmt.Errorf("cdp %s: %s", method, m.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	}
}

func (c *cdp) close() {
	c.w.Close()
	c.rf.Close()
}

// evalInPage evaluates expr in the first page target, as if the user had
// acted (userGesture), and returns its value as JSON.
func (c *cdp) evalInPage(expr string) (string, error) {
	var targets struct {
		TargetInfos []struct {
			TargetID string `json:"targetId"`
			Type     string `json:"type"`
		} `json:"targetInfos"`
	}
	if err := c.call("", "Target.getTargets", nil, &targets); err != nil {
		return "", err
	}
	id := ""
	for _, t := range targets.TargetInfos {
		if t.Type == "page" {
			id = t.TargetID
			break
		}
	}
	if id == "" {
		return "", fmt.Errorf("no page yet")
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := c.call("", "Target.attachToTarget", map[string]any{"targetId": id, "flatten": true}, &att); err != nil {
		return "", err
	}
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := c.call(att.SessionID, "Runtime.evaluate", map[string]any{"expression": expr, "userGesture": true, "returnByValue": true}, &res); err != nil {
		return "", err
	}
	if res.ExceptionDetails != nil {
		return "", fmt.Errorf("page: %s", res.ExceptionDetails.Text)
	}
	return string(res.Result.Value), nil
}

// OpenPageAndRun is OpenPageIn with a script run in the page, with a user
// gesture (to press a button a browser only takes from a user): it is
// evaluated until it returns true (the page has loaded what it needs),
// then the page stays open until done is closed or timeout passes.
func OpenPageAndRun(t testing.TB, ns *NetNS, pageURL string, timeout time.Duration, done <-chan struct{}, script string, extra ...string) {
	t.Helper()
	name := ""
	if ns != nil {
		name = ns.Name
	}
	extra = append(extra, "--remote-debugging-pipe", secureOriginFlag(pageURL))
	c := startChromiumIn(t, name, RequireChromium(t), pageURL, extra...)
	defer c.stop()
	if c.cdp == nil {
		t.Fatal("no DevTools pipe")
	}
	deadline := time.Now().Add(timeout)
	ran := false
	for !ran {
		v, err := c.cdp.evalInPage(script)
		if err == nil && v == "true" {
			ran = true
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the script never returned true (last %q, %v); chromium's log:\n%s", v, err, fileTail(c.logPath, 4096))
		}
		select {
		case err := <-c.done:
			c.exited = true
			t.Fatalf("chromium exited early (%v); its log:\n%s", err, fileTail(c.logPath, 4096))
		case <-time.After(200 * time.Millisecond):
		}
	}
	select {
	case <-done:
	case err := <-c.done:
		c.exited = true
		t.Fatalf("chromium exited early (%v); its log:\n%s", err, fileTail(c.logPath, 4096))
	case <-time.After(time.Until(deadline)):
		t.Fatalf("timed out after %v; chromium's log:\n%s", timeout, fileTail(c.logPath, 4096))
	}
}
