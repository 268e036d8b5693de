package cli

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/wskit/wskit"
)

// console is where wskit dial writes: messages received on stdout, and the
// rest, for a person, on stderr. Its methods are safe for concurrent use,
// and each writes whole lines.
//
// On a terminal it tells sent from received: a received message is marked
// "< " when stdout is a terminal, a sent one that was not typed (from -send
// or a pipe) "> " on stderr when stderr is one, and a typed one follows the
// "> " prompt. Elsewhere stdout holds the messages alone, one per line.
type console struct {
	stdout, stderr io.Writer
	json           bool // messages as JSON objects
	marks          bool // "< " before each message received
	echo           bool // "> " and each message sent, on stderr
	prompt         bool // a "> " prompt on stderr before each line read

	mu        sync.Mutex
	prompting bool // the prompt is on the screen, and a line being typed
}

// clearPrompt erases the prompt line before other output, with c.mu held.
// A line half typed stays in the terminal's buffer, and is sent whole.
func (c *console) clearPrompt() {
	if c.prompting {
		io.WriteString(c.stderr, "\r\x1b[K")
	}
}

// restorePrompt shows the prompt again after other output, with c.mu held.
func (c *console) restorePrompt() {
	if c.prompting {
		io.WriteString(c.stderr, "> ")
	}
}

// showPrompt shows the prompt before a line is read.
func (c *console) showPrompt() {
	if !c.prompt {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prompting = true
	io.WriteString(c.stderr, "> ")
}

// prompted notes that the prompt was answered: with a line, which moved
// the terminal past the prompt, or with the end of input (Ctrl-D), which
// leaves the prompt to erase.
func (c *console) prompted(eof bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if eof {
		c.clearPrompt()
	}
	c.prompting = false
}

// jsonMessage is a message printed with -json.
type jsonMessage struct {
	Type string    `json:"type"` // "text" or "binary"
	Data any       `json:"data"` // a string, or []byte: base64
	Time time.Time `json:"time"` // when it was printed
}

// received prints a message received.
func (c *console) received(m wskit.Message) {
	var line []byte
	switch {
	case c.json:
		jm := jsonMessage{Type: "text", Data: m.Text(), Time: time.Now()}
		if m.Type == wskit.Binary {
			jm.Type, jm.Data = "binary", m.Payload
		}
		line, _ = json.Marshal(jm)
	case m.Type == wskit.Binary && len(m.Payload) == 0:
		line = []byte("[binary]")
	case m.Type == wskit.Binary:
		line = hex.AppendEncode([]byte("[binary] "), m.Payload)
	default:
		line = m.Payload
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.marks {
		c.clearPrompt()
		io.WriteString(c.stdout, "< ")
	}
	c.stdout.Write(line)
	io.WriteString(c.stdout, "\n")
	if c.marks {
		c.restorePrompt()
	}
}

// sent shows a message sent, on a terminal's stderr.
func (c *console) sent(typ wskit.MessageType, text string) {
	if !c.echo {
		return
	}
	line := "> " + text
	if typ == wskit.Binary {
		line = "> [binary] " + hex.EncodeToString([]byte(text))
	}
	c.note(line)
}

// note prints a line, or lines, for a person on stderr.
func (c *console) note(text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearPrompt()
	io.WriteString(c.stderr, strings.TrimSuffix(text, "\n")+"\n")
	c.restorePrompt()
}

// closed prints how the session ended: on stderr, and with -json as the
// last object on stdout.
func (c *console) closed(r wskit.CloseReason, err error) {
	msg := "closed: " + r.String()
	if err != nil {
		msg += " (" + trimLibraryPrefix(err.Error()) + ")"
	}
	c.mu.Lock()
	c.clearPrompt()
	c.prompting = false
	c.mu.Unlock()
	if c.json {
		var end struct {
			Close struct {
				Code   int    `json:"code"`
				Reason string `json:"reason"`
				Error  string `json:"error,omitempty"`
			} `json:"close"`
		}
		end.Close.Code, end.Close.Reason = int(r.Code), r.Reason
		if err != nil {
			end.Close.Error = err.Error()
		}
		line, _ := json.Marshal(end)
		c.mu.Lock()
		fmt.Fprintf(c.stdout, "%s\n", line)
		c.mu.Unlock()
	}
	c.note(msg)
}
