package tlsrec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// Labels of the NSS key log lines that carry the application traffic
// secrets (RFC 8446 §7.1: client_application_traffic_secret_0 and
// server_application_traffic_secret_0).
const (
	LabelClientTraffic = "CLIENT_TRAFFIC_SECRET_0"
	LabelServerTraffic = "SERVER_TRAFFIC_SECRET_0"
)

// RandomLen is the length of a ClientHello's random, which keys the log.
const RandomLen = 32

// ErrKeyLogLine reports a key log line that is not "LABEL <hex> <hex>".
var ErrKeyLogLine = errors.New("tlsrec: malformed key log line")

// ParseKeyLogLine parses one line of the NSS key log format, as crypto/tls
// writes to Config.KeyLogWriter: "LABEL <client random hex> <secret hex>",
// with or without its newline.
func ParseKeyLogLine(line []byte) (label string, clientRandom [RandomLen]byte, secret []byte, err error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	lab, rest, ok1 := bytes.Cut(line, []byte{' '})
	rnd, sec, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || len(lab) == 0 || len(rnd) != 2*RandomLen || len(sec) == 0 || len(sec)%2 != 0 || len(sec) > 2*maxHashLen {
		return "", clientRandom, nil, ErrKeyLogLine
	}
	if _, err := hex.Decode(clientRandom[:], rnd); err != nil {
		return "", clientRandom, nil, ErrKeyLogLine
	}
	secret = make([]byte, len(sec)/2)
	if _, err := hex.Decode(secret, sec); err != nil {
		return "", clientRandom, nil, ErrKeyLogLine
	}
	switch string(lab) { // the known labels come back without a copy
	case LabelClientTraffic:
		label = LabelClientTraffic
	case LabelServerTraffic:
		label = LabelServerTraffic
	default:
		label = string(lab)
	}
	return label, clientRandom, secret, nil
}

// Secrets are a connection's application traffic secrets: the client's
// and the server's, generation 0 as the key log gives them.
type Secrets struct {
	Client []byte
	Server []byte
}

// KeyLog collects application traffic secrets by client random. Set it as
// tls.Config.KeyLogWriter (one may serve every connection of a Config),
// and Take each connection's secrets once its handshake has ended.
// Handshake secrets and other labels are ignored.
//
// An entry stays until it is taken: call Take for every handshake that may
// have logged, failed ones included. It is safe for concurrent use.
type KeyLog struct {
	mu      sync.Mutex
	secrets map[[RandomLen]byte]Secrets
}

// Write takes one or more whole key log lines, as crypto/tls writes them
// (one line per call). Lines of other labels than the application
// traffic secrets' are skipped unread. It fails on a malformed traffic
// secret line, which makes crypto/tls fail that handshake: a connection
// whose secrets are lost could not be taken over.
func (k *KeyLog) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(bytes.TrimSpace(line)) == 0 || line[0] == '#' {
			continue
		}
		if lab, _, _ := bytes.Cut(line, []byte{' '}); string(lab) != LabelClientTraffic && string(lab) != LabelServerTraffic {
			continue // a handshake secret: not parsed, nor kept
		}
		label, random, secret, err := ParseKeyLogLine(line)
		if err != nil {
			return 0, err
		}
		k.mu.Lock()
		if k.secrets == nil {
			k.secrets = make(map[[RandomLen]byte]Secrets)
		}
		s := k.secrets[random]
		if label == LabelClientTraffic {
			s.Client = secret
		} else {
			s.Server = secret
		}
		k.secrets[random] = s
		k.mu.Unlock()
	}
	return len(p), nil
}

// Take removes and returns the secrets logged for the connection whose
// ClientHello carried clientRandom. ok is false unless both were logged.
func (k *KeyLog) Take(clientRandom [RandomLen]byte) (s Secrets, ok bool) {
	k.mu.Lock()
	s, found := k.secrets[clientRandom]
	delete(k.secrets, clientRandom)
	k.mu.Unlock()
	return s, found && s.Client != nil && s.Server != nil
}

// Len returns the number of connections whose secrets are held.
func (k *KeyLog) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.secrets)
}

// ClientRandom returns the random of the ClientHello at the start of
// stream, the bytes a client sends first. ok is false when stream does not
// start with a handshake record holding a ClientHello up to its random.
//
// A server that accepts Encrypted Client Hello logs the random of the
// inner ClientHello, which the stream does not show: such connections
// need a KeyLog each.
func ClientRandom(stream []byte) (random [RandomLen]byte, ok bool) {
	const (
		at  = HeaderLen + 4 + 2 // record header, handshake header, legacy_version
		end = at + RandomLen
	)
	if len(stream) < end || stream[0] != typeHandshake || int(stream[3])<<8|int(stream[4]) < end-HeaderLen || stream[HeaderLen] != hsClientHello {
		return random, false
	}
	copy(random[:], stream[at:end])
	return random, true
}

// checkSecret says whether secret fits suite s.
func (s *suite) checkSecret(who string, secret []byte) error {
	if len(secret) != s.hashLen {
		return fmt.Errorf("tlsrec: %s secret of %d bytes, want %d for the suite's hash", who, len(secret), s.hashLen)
	}
	return nil
}
