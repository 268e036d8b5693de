package tlsrec

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/wskit/wskit/internal/bufpool"
)

// Sizes of the record layer (RFC 8446 §5).
const (
	HeaderLen     = 5                      // content type, legacy_record_version, length
	MaxPlaintext  = 1 << 14                // content bytes one record may carry
	MaxCiphertext = 1<<14 + 256            // largest protected record after its header
	Overhead      = HeaderLen + 1 + tagLen // what sealing adds to a record's content: header, inner type, tag
	// KeyUpdateLen is the size of a sealed KeyUpdate record, which output
	// may carry ahead of the records asked for.
	KeyUpdateLen = Overhead + 5
	alertLen     = Overhead + 2
)

// Record content types and handshake message types.
const (
	typeChangeCipherSpec = 20
	typeAlert            = 21
	typeHandshake        = 22
	typeApplicationData  = 23

	hsClientHello      = 1
	hsNewSessionTicket = 4
	hsKeyUpdate        = 24

	// A NewSessionTicket body is at least lifetime, age_add, an empty
	// nonce, a one-byte ticket and no extensions, at most all of them full
	// (RFC 8446 §4.6.1).
	minTicket = 4 + 4 + 1 + 2 + 1 + 2
	maxTicket = 4 + 4 + 1 + 255 + 2 + (1<<16 - 1) + 2 + (1<<16 - 2)

	// maxUseless bounds the messages in a row that bring no application
	// data (tickets, KeyUpdates, user_canceled alerts), as crypto/tls
	// does: a KeyUpdate costs a key derivation, so a peer may not send
	// them in an endless run. Empty records cost what a small one does,
	// and are not counted.
	maxUseless = 16
)

// Role says which end of the connection the record layer speaks for.
type Role uint8

const (
	Server Role = iota
	Client
)

func (r Role) String() string {
	if r == Client {
		return "client"
	}
	return "server"
}

// Config sets up a RecordLayer.
type Config struct {
	// Suite is the negotiated cipher suite, as tls.ConnectionState
	// reports it: tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384
	// or tls.TLS_CHACHA20_POLY1305_SHA256.
	Suite uint16
	Role  Role
	// Secrets are the application traffic secrets, the key log's
	// generation 0: a server reads with the client's and writes with its
	// own, a client the other way round.
	Secrets Secrets
	// ReadSeq is the sequence number of the next record the peer sends:
	// how many it sealed under its secret that were read before (0 when
	// the handshake's reader stopped at the peer's Finished).
	ReadSeq uint64
	// WriteSeq is the sequence number of our next record: how many
	// records were already sealed under our secret, such as the session
	// tickets a crypto/tls server sends with its Finished (see CountSealed).
	WriteSeq uint64
}

// EventKind says what an Event reports.
type EventKind uint8

const (
	EventData  EventKind = iota + 1 // application data, in Event.Data (never empty)
	EventClose                      // the peer's close_notify: it sends nothing more
)

// Event is something the peer sent. Data is borrowed: it points into the
// input given to Receive when the record arrived whole in it, else into a
// pooled buffer, and is valid until the next call on the RecordLayer.
type Event struct {
	Kind EventKind
	Data []byte
}

// Errors of the RecordLayer that are not alerts.
var (
	ErrTruncated   = errors.New("tlsrec: connection ended inside a record")
	ErrWriteClosed = errors.New("tlsrec: close_notify or a fatal alert already sent")
	ErrReleased    = errors.New("tlsrec: record layer used after release")
	ErrTooLong     = errors.New("tlsrec: record content exceeds 16384 bytes")
)

// direction is the protection of one direction of the connection: the
// traffic secret (kept for the next KeyUpdate), the keys derived from it,
// and the sequence number of the next record. Its suite is the
// RecordLayer's.
type direction struct {
	keys   *trafficKeys // nil after Shed, made again from secret when used
	seq    uint64
	secret [maxHashLen]byte
}

// trafficKeys are the AEAD and IV of a traffic secret, apart from the
// secret so that an idle layer keeps neither.
type trafficKeys struct {
	aead cipher.AEAD
	iv   [ivLen]byte
}

// What the layer owes the peer, besides a fatal alert.
const (
	oweNothing   uint8 = iota
	oweUpdate          // a KeyUpdate, update_not_requested
	oweUpdateReq       // a KeyUpdate, update_requested
)

// RecordLayer is the TLS 1.3 record layer of one connection, after the
// handshake, without I/O: feed it received bytes with Receive, seal
// application data with AppendRecords or SealInPlace, and after each
// Receive drain what it owes the peer (the KeyUpdate a peer's request
// calls for, the alert that reports a fault) with AppendReplies.
//
// An idle RecordLayer holds its two AEADs, their secrets and a few
// counters; a record cut by the end of the input is buffered in a pooled
// buffer only until it is complete.
//
// It updates keys as RFC 8446 §4.6.3 asks: the read key on the peer's
// KeyUpdate, the write key after a KeyUpdate of its own, which it sends
// when the peer requests one, when UpdateKeys asks, and before the write
// sequence number reaches the suite's limit (2^24 records for AES-GCM);
// it requests the peer's update when the read sequence number reaches
// that limit. Sequence numbers never wrap: a peer's record numbered
// 2^64-1 fails the connection.
//
// A RecordLayer is not safe for concurrent use; the transport serialises
// calls.
type RecordLayer struct {
	r, w direction

	in   *[]byte // body of the record being received, while cut
	lent *[]byte // buffer of the data returned last, reclaimed on the next call
	err  error

	suite    *suite
	hsLeft   uint32 // bytes still to come of a NewSessionTicket being skipped
	hdr      [HeaderLen]byte
	hdrN     uint8 // bytes in hdr; HeaderLen while the body is cut
	hs       [4]byte
	hsN      uint8 // bytes in hs of a handshake message header cut across records
	limitLog uint8 // of the suite; lowered by tests
	useless  uint8 // messages without data since the last data
	owe      uint8
	alert    uint8 // 1 + the fatal alert owed to the peer; 0 when none
	role     Role
	readDone bool // close_notify received
	sentDone bool // close_notify or a fatal alert sent
}

// New returns the record layer of a connection whose handshake is done.
func New(cfg Config) (*RecordLayer, error) {
	l := new(RecordLayer)
	if err := l.Init(cfg); err != nil {
		return nil, err
	}
	return l, nil
}

// Init sets l up as New does, for a RecordLayer embedded in another value.
func (l *RecordLayer) Init(cfg Config) error {
	s, err := suiteByID(cfg.Suite)
	if err != nil {
		return err
	}
	if cfg.Role != Server && cfg.Role != Client {
		return errors.New("tlsrec: unknown role")
	}
	read, write := cfg.Secrets.Client, cfg.Secrets.Server
	if cfg.Role == Client {
		read, write = write, read
	}
	if err := s.checkSecret("read", read); err != nil {
		return err
	}
	if err := s.checkSecret("write", write); err != nil {
		return err
	}
	if cfg.ReadSeq == math.MaxUint64 || cfg.WriteSeq == math.MaxUint64 {
		return errors.New("tlsrec: sequence number exhausted")
	}
	*l = RecordLayer{suite: s, role: cfg.Role, limitLog: s.limitLog}
	if err := l.r.set(s, read, cfg.ReadSeq); err != nil {
		return err
	}
	return l.w.set(s, write, cfg.WriteSeq)
}

func (d *direction) set(s *suite, secret []byte, seq uint64) error {
	aead, iv, err := s.trafficKeys(secret)
	if err != nil {
		return err
	}
	d.keys, d.seq = &trafficKeys{aead: aead, iv: iv}, seq
	copy(d.secret[:], secret)
	return nil
}

// ready makes the AEAD again after Shed. It allocates, which only a
// connection waking from idle pays.
func (d *direction) ready(s *suite) {
	if d.keys == nil {
		aead, iv, _ := s.trafficKeys(d.secret[:s.hashLen]) // the secret made them before
		d.keys = &trafficKeys{aead: aead, iv: iv}
	}
}

// shed drops the keys, and clears the IV, which the secret makes again.
func (d *direction) shed() {
	if d.keys != nil {
		clear(d.keys.iv[:])
		d.keys = nil
	}
}

// update moves the direction to the next traffic secret (RFC 8446 §7.2).
func (d *direction) update(s *suite) error {
	return d.set(s, s.nextSecret(d.secret[:s.hashLen]), 0)
}

// xorSeq turns the IV into the nonce of the record numbered seq, and back
// (RFC 8446 §5.3): the nonce needs no room of its own.
func (d *direction) xorSeq() {
	iv := d.keys.iv[ivLen-8:]
	binary.BigEndian.PutUint64(iv, binary.BigEndian.Uint64(iv)^d.seq)
}

// seal protects rec in place: rec[HeaderLen:len(rec)-tagLen] holds the
// inner plaintext (content and type), and seal fills in the header and
// the tag.
func (d *direction) seal(s *suite, rec []byte) {
	body := rec[HeaderLen:]
	rec[0], rec[1], rec[2] = typeApplicationData, 3, 3
	binary.BigEndian.PutUint16(rec[3:HeaderLen], uint16(len(body)))
	d.ready(s)
	d.xorSeq()
	d.keys.aead.Seal(body[:0], d.keys.iv[:], body[:len(body)-tagLen], rec[:HeaderLen])
	d.xorSeq()
	d.seq++
}

// open authenticates and decrypts a record's body in place and returns the
// inner plaintext.
func (d *direction) open(s *suite, hdr, body []byte) ([]byte, error) {
	d.ready(s)
	d.xorSeq()
	inner, err := d.keys.aead.Open(body[:0], d.keys.iv[:], body, hdr)
	d.xorSeq()
	d.seq++
	return inner, err
}

// Receive consumes bytes from the start of in until it has an event to
// report, and says how many bytes it consumed. ok is false when all of in
// was consumed without completing an event: call again with more bytes.
// Records that carry no data (session tickets, KeyUpdates, empty records)
// are handled on the way. After the peer's close_notify, input is consumed
// and ignored.
//
// Records are decrypted in place: in is modified. A fault in the input
// returns an *AlertError; the alert is queued for AppendReplies, and every
// later call returns the same error. So does an alert from the peer, for
// which nothing is owed.
func (l *RecordLayer) Receive(in []byte) (ev Event, n int, ok bool, err error) {
	l.ReturnLent()
	for {
		if l.err != nil {
			return ev, n, false, l.err
		}
		if l.readDone {
			return ev, len(in), false, nil
		}
		var hdr, body []byte
		if l.hdrN == 0 {
			rest := in[n:]
			if len(rest) < HeaderLen {
				l.hdrN = uint8(copy(l.hdr[:], rest))
				return ev, len(in), false, nil
			}
			size, err := l.checkHeader(rest[:HeaderLen])
			if err != nil {
				return ev, n, false, err
			}
			if len(rest) < HeaderLen+size {
				l.hdrN = uint8(copy(l.hdr[:], rest))
				l.appendBody(rest[HeaderLen:], size)
				return ev, len(in), false, nil
			}
			hdr, body = rest[:HeaderLen], rest[HeaderLen:HeaderLen+size]
			n += HeaderLen + size
		} else {
			if l.hdrN < HeaderLen {
				k := copy(l.hdr[l.hdrN:], in[n:])
				l.hdrN += uint8(k)
				n += k
				if l.hdrN < HeaderLen {
					return ev, n, false, nil
				}
				if _, err := l.checkHeader(l.hdr[:]); err != nil {
					return ev, n, false, err
				}
			}
			size := l.size()
			need := size - l.received()
			if len(in)-n < need {
				l.appendBody(in[n:], size)
				return ev, len(in), false, nil
			}
			l.appendBody(in[n:n+need], size)
			n += need
			hdr, body = l.hdr[:], nil
			if l.in != nil {
				body = *l.in
			}
			l.lent, l.in = l.in, nil
			l.hdrN = 0
		}
		ev, err = l.record(hdr, body)
		if err != nil {
			return Event{}, n, false, err
		}
		if ev.Kind != 0 {
			return ev, n, true, nil
		}
		l.ReturnLent()
	}
}

// checkHeader checks the header of a record before its body comes, and
// returns the body's length.
func (l *RecordLayer) checkHeader(h []byte) (int, error) {
	size := int(h[3])<<8 | int(h[4])
	switch {
	case h[0] != typeApplicationData:
		// After the handshake every record is protected, and
		// change_cipher_spec, allowed only before the peer's Finished
		// (RFC 8446 §5), is unexpected too.
		return 0, l.fail(AlertUnexpectedMessage, "record of type "+typeName(h[0])+" after the handshake")
	case h[1] != 3 || h[2] != 3:
		// RFC 8446 §5.1 has receivers ignore legacy_record_version, but
		// the AAD covers it anyway, and a header that is not 0x0303 is
		// most likely not TLS: refuse it before buffering a body, as
		// crypto/tls and OpenSSL do.
		return 0, l.fail(AlertProtocolVersion, "record version is not 0x0303")
	case size > MaxCiphertext:
		return 0, l.fail(AlertRecordOverflow, "protected record longer than 2^14+256 bytes")
	case size < tagLen:
		return 0, l.fail(AlertBadRecordMAC, "protected record shorter than its tag")
	}
	return size, nil
}

func typeName(t byte) string {
	switch t {
	case typeChangeCipherSpec:
		return "change_cipher_spec"
	case typeAlert:
		return "alert"
	case typeHandshake:
		return "handshake"
	}
	return strconv.Itoa(int(t))
}

// size is the body length of the record whose header is in l.hdr.
func (l *RecordLayer) size() int { return int(l.hdr[3])<<8 | int(l.hdr[4]) }

// received is the number of body bytes held of a cut record.
func (l *RecordLayer) received() int {
	if l.in == nil {
		return 0
	}
	return len(*l.in)
}

// appendBody copies bytes of a cut record's body to its pooled buffer,
// which grows with the bytes received, not straight to the announced
// length: a peer announcing a large record must send it to cost memory.
func (l *RecordLayer) appendBody(p []byte, size int) {
	if len(p) == 0 {
		return
	}
	have := l.received()
	l.in = bufpool.Grow(l.in, max(len(p), min(size-have, 2*have)))
	*l.in = append(*l.in, p...) // a no-op move when p was read into ReadRoom
}

// ReadRoom returns free space in the buffer of a record cut by the end of
// the input, for the caller to read the record's next bytes straight into
// it; passing exactly those bytes to Receive then costs no copy. It offers
// at most what the record still needs, growing with the bytes received as
// Receive does, and returns nil between records or when the record needs
// fewer than least more bytes.
func (l *RecordLayer) ReadRoom(least int) []byte {
	if l.err != nil || l.readDone || l.hdrN < HeaderLen {
		return nil
	}
	have := l.received()
	need := l.size() - have
	if need < least || need == 0 {
		return nil
	}
	r := min(need, max(least, 2*have))
	l.in = bufpool.Grow(l.in, r)
	return (*l.in)[have : have+r]
}

// record opens one whole record and acts on its content. It returns an
// event with a zero Kind for a record that carries nothing to report.
func (l *RecordLayer) record(hdr, body []byte) (Event, error) {
	if l.r.seq == math.MaxUint64 {
		// The peer had to update its key long before (RFC 8446 §5.3).
		return Event{}, l.fail(AlertInternalError, "read sequence number exhausted")
	}
	inner, err := l.r.open(l.suite, hdr, body)
	if err != nil {
		return Event{}, l.fail(AlertBadRecordMAC, "record authentication failed")
	}
	if l.r.seq == l.suite.seqLimit(l.limitLog) && l.owe != oweUpdateReq && !l.sentDone {
		l.owe = oweUpdateReq // the peer's key is worn: ask it to update
	}
	if len(inner) > MaxPlaintext+1 {
		return Event{}, l.fail(AlertRecordOverflow, "record content longer than 2^14 bytes")
	}
	// The content type is the last nonzero byte; zeros after it pad
	// (RFC 8446 §5.4).
	i := len(inner) - 1
	for i >= 0 && inner[i] == 0 {
		i--
	}
	if i < 0 {
		return Event{}, l.fail(AlertUnexpectedMessage, "record without a content type")
	}
	typ, content := inner[i], inner[:i]
	if typ != typeHandshake && (l.hsN != 0 || l.hsLeft != 0) {
		return Event{}, l.fail(AlertUnexpectedMessage, "handshake message interrupted by another record type")
	}
	switch typ {
	case typeApplicationData:
		if len(content) == 0 {
			return Event{}, nil
		}
		l.useless = 0
		return Event{Kind: EventData, Data: content}, nil
	case typeAlert:
		if len(content) != 2 {
			return Event{}, l.fail(AlertDecodeError, "alert record not 2 bytes long")
		}
		switch a := Alert(content[1]); a {
		case AlertCloseNotify:
			l.readDone = true
			l.discardInput()
			return Event{Kind: EventClose}, nil
		case AlertUserCanceled:
			// A close_notify should follow (RFC 8446 §6.1); crypto/tls,
			// BoringSSL and NSS drop it too.
			return Event{}, l.uselessMessage()
		default:
			l.err = &AlertError{Alert: a, Remote: true}
			l.sentDone = true // the peer has gone: nothing more is sent
			l.discardInput()
			return Event{}, l.err
		}
	case typeHandshake:
		if len(content) == 0 {
			return Event{}, l.fail(AlertUnexpectedMessage, "empty handshake record")
		}
		return Event{}, l.handshake(content)
	}
	// change_cipher_spec is never protected (RFC 8446 §5), and the other
	// types are unknown.
	return Event{}, l.fail(AlertUnexpectedMessage, "protected record of type "+typeName(typ))
}

func (l *RecordLayer) uselessMessage() error {
	l.useless++
	if l.useless > maxUseless {
		return l.fail(AlertUnexpectedMessage, "too many messages in a row without application data")
	}
	return nil
}

// handshake handles the post-handshake messages of one record's content.
// A message may span records: its header is kept in l.hs, and the rest of
// an ignored NewSessionTicket is skipped as it comes.
func (l *RecordLayer) handshake(p []byte) error {
	for len(p) > 0 {
		if l.hsLeft > 0 {
			k := min(uint32(len(p)), l.hsLeft)
			p = p[k:]
			l.hsLeft -= k
			continue
		}
		if l.hsN < 4 {
			k := copy(l.hs[l.hsN:], p)
			l.hsN += uint8(k)
			p = p[k:]
			if l.hsN < 4 {
				return nil
			}
			if err := l.uselessMessage(); err != nil {
				return err
			}
			size := uint32(l.hs[1])<<16 | uint32(l.hs[2])<<8 | uint32(l.hs[3])
			switch l.hs[0] {
			case hsNewSessionTicket:
				if l.role != Client {
					return l.fail(AlertUnexpectedMessage, "NewSessionTicket sent to a server")
				}
				if size < minTicket || size > maxTicket {
					return l.fail(AlertDecodeError, "NewSessionTicket of impossible length")
				}
				// A client here resumes nothing: the ticket is skipped.
				l.hsLeft, l.hsN = size, 0
				continue
			case hsKeyUpdate:
				if size != 1 {
					return l.fail(AlertDecodeError, "KeyUpdate not 1 byte long")
				}
			default:
				return l.fail(AlertUnexpectedMessage, "post-handshake message of type "+strconv.Itoa(int(l.hs[0])))
			}
			if len(p) == 0 {
				return nil // its byte is in the next record
			}
		}
		// l.hs holds a KeyUpdate's header; p[0] is its request_update.
		if len(p) != 1 {
			// A key change must align with a record boundary (RFC 8446 §5.1).
			return l.fail(AlertUnexpectedMessage, "KeyUpdate not at the end of its record")
		}
		l.hsN = 0
		return l.keyUpdate(p[0])
	}
	return nil
}

// keyUpdate acts on the peer's KeyUpdate (RFC 8446 §4.6.3): the next
// records it sends are under its next secret, and if it asked, ours will
// be too, after a KeyUpdate of our own.
func (l *RecordLayer) keyUpdate(request byte) error {
	if request > 1 {
		return l.fail(AlertIllegalParameter, "KeyUpdate request_update is neither 0 nor 1")
	}
	if err := l.r.update(l.suite); err != nil {
		return l.fail(AlertInternalError, err.Error())
	}
	if request == 1 && l.owe == oweNothing && !l.sentDone {
		l.owe = oweUpdate
	}
	return nil
}

// fail records a fault of the peer's input: the layer refuses anything
// more, and AppendReplies sends alert a.
func (l *RecordLayer) fail(a Alert, reason string) error {
	l.err = &AlertError{Alert: a, Reason: reason}
	if !l.sentDone {
		l.alert = uint8(a) + 1
	}
	l.owe = oweNothing
	l.discardInput()
	return l.err
}

// discardInput drops a cut record: no more input will be read.
func (l *RecordLayer) discardInput() {
	bufpool.Put(l.in)
	l.in = nil
	l.hdrN = 0
}

// End tells the layer that the peer's byte stream has ended (the
// transport read EOF), gives back a cut record's buffer and reports how
// the stream ended: nil after the peer's close_notify; ErrTruncated
// inside a record; io.EOF at a record boundary without close_notify,
// which crypto/tls accepts too, as many peers end that way, but after
// which the data cannot be known to be complete (RFC 8446 §6.1); the
// error that ended the connection, if one did.
func (l *RecordLayer) End() error {
	cut := l.Buffered() != 0
	l.discardInput()
	switch {
	case l.err != nil:
		return l.err
	case l.readDone:
		return nil
	case cut:
		return ErrTruncated
	}
	return io.EOF
}

// Err returns the error that ended the connection, if any.
func (l *RecordLayer) Err() error { return l.err }

// Buffered reports how many bytes of an unfinished record the layer holds.
func (l *RecordLayer) Buffered() int { return int(l.hdrN) + l.received() }

// Detach hands over the pooled buffer holding the data returned last, if
// its record was cut and copied: the data then stays valid after the next
// call, and the caller gives the buffer back with ReturnBuffer.
func (l *RecordLayer) Detach() *[]byte {
	b := l.lent
	l.lent = nil
	return b
}

// ReturnLent gives back the pooled buffer that may hold the data returned
// last, which is invalid afterwards. Receive does it on its next call; a
// transport whose input has run out calls it, so that an idle connection
// holds no buffer.
func (l *RecordLayer) ReturnLent() {
	if l.lent != nil {
		bufpool.Put(l.lent)
		l.lent = nil
	}
}

// ReturnBuffer gives a buffer from Detach back to the pool.
func ReturnBuffer(b *[]byte) { bufpool.Put(b) }

// UpdateKeys makes the next output start with a KeyUpdate, after which
// our records are sealed under our next secret. With requestPeer the
// KeyUpdate asks the peer to update its key too.
func (l *RecordLayer) UpdateKeys(requestPeer bool) {
	if l.err != nil || l.sentDone {
		return
	}
	if requestPeer {
		l.owe = oweUpdateReq
	} else if l.owe == oweNothing {
		l.owe = oweUpdate
	}
}

// writable says whether records may be sealed, and moves to the next write
// key first when one is owed or the current one is worn out.
func (l *RecordLayer) writable(dst []byte) ([]byte, error) {
	if l.err != nil {
		return dst, l.err
	}
	if l.sentDone {
		return dst, ErrWriteClosed
	}
	return l.appendKeyUpdate(dst)
}

// appendKeyUpdate sends the KeyUpdate owed, if any, or due because the
// write sequence number has reached the suite's limit, and then moves to
// the next write key.
func (l *RecordLayer) appendKeyUpdate(dst []byte) ([]byte, error) {
	if l.owe == oweNothing && l.w.seq < l.suite.seqLimit(l.limitLog) {
		return dst, nil
	}
	var msg = [5]byte{hsKeyUpdate, 0, 0, 1, 0}
	if l.owe == oweUpdateReq {
		msg[4] = 1
	}
	l.owe = oweNothing
	dst = l.appendRecord(dst, typeHandshake, msg[:])
	if err := l.w.update(l.suite); err != nil {
		// The key schedule cannot fail with valid secrets; were it to, the
		// peer is already on the next key and nothing more can be sent.
		l.err, l.sentDone = err, true
		return dst, err
	}
	return dst, nil
}

// appendRecord appends one record sealing content of type typ.
func (l *RecordLayer) appendRecord(dst []byte, typ byte, content []byte) []byte {
	start := len(dst)
	end := start + HeaderLen + len(content) + 1 + tagLen
	dst = slices.Grow(dst, end-start)[:end]
	copy(dst[start+HeaderLen:], content)
	dst[start+HeaderLen+len(content)] = typ
	l.w.seal(l.suite, dst[start:])
	return dst
}

// SealedSize returns the number of bytes AppendRecords appends for n bytes
// of data now, KeyUpdates included, so that a caller can reserve room in
// one step.
func (l *RecordLayer) SealedSize(n int) int {
	records := (n + MaxPlaintext - 1) / MaxPlaintext
	size := n + records*Overhead
	limit := l.suite.seqLimit(l.limitLog)
	seq := l.w.seq
	if l.owe != oweNothing || seq >= limit {
		size += KeyUpdateLen
		seq = 0
	}
	if r := uint64(records); r > limit-seq {
		extra := r - (limit - seq)
		size += KeyUpdateLen * int(1+(extra-1)/limit)
	}
	return size
}

// AppendRecords appends records sealing data, at most MaxPlaintext bytes
// each, to dst (empty data appends none). A KeyUpdate owed or due goes
// first. data must not overlap the free capacity of dst.
func (l *RecordLayer) AppendRecords(dst, data []byte) ([]byte, error) {
	dst, err := l.writable(dst)
	if err != nil {
		return dst, err
	}
	for len(data) > 0 {
		chunk := data[:min(len(data), MaxPlaintext)]
		data = data[len(chunk):]
		if dst, err = l.appendKeyUpdate(dst); err != nil {
			return dst, err
		}
		dst = l.appendRecord(dst, typeApplicationData, chunk)
	}
	return dst, nil
}

// SealInPlace seals one record whose data the caller has put in place:
// buf[start:start+HeaderLen] is room for the header and buf[start+HeaderLen:]
// the data, at most MaxPlaintext bytes. It appends the content type and
// the tag and returns buf, grown like append when its capacity is short
// (reserve Overhead-HeaderLen bytes, or KeyUpdateLen more, to avoid it).
// A KeyUpdate owed or due goes first, moving the data up.
func (l *RecordLayer) SealInPlace(buf []byte, start int) ([]byte, error) {
	if start < 0 || len(buf)-start < HeaderLen {
		return buf, errors.New("tlsrec: no room for the record header")
	}
	if len(buf)-start-HeaderLen > MaxPlaintext {
		return buf, ErrTooLong
	}
	if l.err != nil {
		return buf, l.err
	}
	if l.sentDone {
		return buf, ErrWriteClosed
	}
	if l.owe != oweNothing || l.w.seq >= l.suite.seqLimit(l.limitLog) {
		// Rare: move the data up to make room for the KeyUpdate before it.
		n := len(buf) - start
		buf = slices.Grow(buf, KeyUpdateLen+1+tagLen)[:len(buf)+KeyUpdateLen]
		copy(buf[start+KeyUpdateLen:], buf[start:start+n])
		ku, err := l.appendKeyUpdate(buf[:start])
		if err != nil {
			return buf[:start+KeyUpdateLen+n], err
		}
		start = len(ku)
	}
	buf = append(buf, typeApplicationData)
	buf = slices.Grow(buf, tagLen)
	buf = buf[:len(buf)+tagLen]
	l.w.seal(l.suite, buf[start:])
	return buf, nil
}

// AppendAlert appends an alert record to dst: close_notify to say we send
// nothing more (the peer may go on sending), user_canceled ahead of it to
// say why, or a fatal alert, which ends the connection. Nothing but a
// close_notify may be sealed after user_canceled, nothing at all after
// the others.
func (l *RecordLayer) AppendAlert(dst []byte, a Alert) ([]byte, error) {
	dst, err := l.writable(dst)
	if err != nil {
		return dst, err
	}
	dst = l.appendRecord(dst, typeAlert, []byte{a.level(), byte(a)})
	switch a {
	case AlertUserCanceled:
		return dst, nil
	case AlertCloseNotify:
	default:
		l.err = &AlertError{Alert: a, Reason: "sent by this end"}
		l.discardInput()
	}
	l.sentDone = true
	l.owe = oweNothing
	return dst, nil
}

// Replies returns the size of the records AppendReplies would append.
func (l *RecordLayer) Replies() int {
	switch {
	case l.alert != 0:
		return alertLen
	case l.err == nil && !l.sentDone && l.owe != oweNothing:
		return KeyUpdateLen
	}
	return 0
}

// AppendReplies appends the records the connection owes the peer to dst
// and forgets them: the alert reporting a fault in its input, or the
// KeyUpdate its KeyUpdate or a worn read key calls for. Call it after
// Receive, and write the result.
func (l *RecordLayer) AppendReplies(dst []byte) []byte {
	if l.alert != 0 {
		a := Alert(l.alert - 1)
		l.alert = 0
		l.sentDone = true
		return l.appendRecord(dst, typeAlert, []byte{a.level(), byte(a)})
	}
	if l.err != nil || l.sentDone || l.owe == oweNothing {
		return dst
	}
	dst, _ = l.appendKeyUpdate(dst)
	return dst
}

// Shed drops the two AEADs and IVs, about 1.5 KiB with AES-GCM, keeping
// their secrets: the next record opened or sealed makes them again. A
// transport calls it on a connection that has been idle a while.
func (l *RecordLayer) Shed() {
	if l.err != ErrReleased {
		l.r.shed()
		l.w.shed()
	}
}

// Release hands pooled buffers back and forgets the secrets; the layer is
// unusable afterwards except to return ErrReleased. Call it when the
// connection ends.
func (l *RecordLayer) Release() {
	l.ReturnLent()
	l.discardInput()
	clear(l.r.secret[:])
	clear(l.w.secret[:])
	l.r.shed()
	l.w.shed()
	l.err = ErrReleased
	l.alert, l.owe = 0, oweNothing
	l.sentDone = true
}
