package tlsrec

import (
	"errors"
	"math"

	"github.com/wskit/wskit/internal/bufpool"
)

// CountRecords counts the whole TLS records at the start of stream, of any
// content type, and returns how many bytes of stream follow the last of
// them: a record cut short, or nothing.
func CountRecords(stream []byte) (records, rest int) {
	for len(stream) >= HeaderLen {
		size := HeaderLen + (int(stream[3])<<8 | int(stream[4]))
		if len(stream) < size {
			break
		}
		stream = stream[size:]
		records++
	}
	return records, len(stream)
}

// CountSealed returns the number of records of stream sealed under the
// traffic secret of the given suite, numbered from 0: given what
// crypto/tls wrote during a handshake and our application traffic secret,
// the write sequence number a RecordLayer continues from. Such records
// are the last of the stream; the records before them (plaintext hellos,
// change_cipher_spec, the flight under the handshake secret) are told
// apart by trying to open them, as their headers look alike.
//
// A crypto/tls server seals its session tickets under its application
// secret in the flight that carries its Finished, before the client's
// Finished arrives (one ticket, unless tickets are disabled or the client
// cannot use them), so that counting the records written after the
// handshake would miss them. stream must hold whole records; it is not
// modified.
func CountSealed(suiteID uint16, secret, stream []byte) (int, error) {
	s, err := suiteByID(suiteID)
	if err != nil {
		return 0, err
	}
	if err := s.checkSecret("traffic", secret); err != nil {
		return 0, err
	}
	if _, rest := CountRecords(stream); rest != 0 {
		return 0, errors.New("tlsrec: stream ends inside a record")
	}
	var d direction
	if err := d.set(s, secret, 0); err != nil {
		return 0, err
	}
	scratch := bufpool.Get(HeaderLen + MaxCiphertext)
	defer bufpool.Put(scratch)
	return countSealed(s, &d, stream, scratch)
}

// SkipSealed moves the write sequence number of a new layer past the
// records of written sealed under its write secret, counted as
// CountSealed counts them: for a server, what crypto/tls wrote during the
// handshake, whose session tickets are sealed under it. It uses the
// layer's own cipher instead of making one, and opens the records in
// place: written is overwritten. Call it before sealing anything, with
// Config.WriteSeq 0.
func (l *RecordLayer) SkipSealed(written []byte) error {
	if l.err != nil {
		return l.err
	}
	if l.w.seq != 0 {
		return errors.New("tlsrec: SkipSealed after records were sealed")
	}
	if _, rest := CountRecords(written); rest != 0 {
		return errors.New("tlsrec: stream ends inside a record")
	}
	_, err := countSealed(l.suite, &l.w, written, nil)
	return err
}

// countSealed counts the records of stream that d opens, which must be the
// last ones, as CountSealed describes, leaving d's sequence number at
// their count. It opens copies in scratch, or the records in place when
// scratch is nil.
func countSealed(s *suite, d *direction, stream []byte, scratch *[]byte) (int, error) {
	for len(stream) > 0 {
		size := HeaderLen + (int(stream[3])<<8 | int(stream[4]))
		rec := stream[:size]
		stream = stream[size:]
		if rec[0] != typeApplicationData || size-HeaderLen < tagLen || size-HeaderLen > MaxCiphertext {
			if d.seq > 0 {
				return 0, errors.New("tlsrec: record not sealed under the secret after one that is")
			}
			continue
		}
		if scratch != nil {
			*scratch = append((*scratch)[:0], rec...)
			rec = *scratch
		}
		seq := d.seq
		if _, err := d.open(s, rec[:HeaderLen], rec[HeaderLen:]); err != nil {
			if seq > 0 {
				return 0, errors.New("tlsrec: record not sealed under the secret after one that is")
			}
			d.seq = 0 // sealed under another secret: not one of ours yet
			continue
		}
		if d.seq == math.MaxUint64 {
			return 0, errors.New("tlsrec: too many records")
		}
	}
	return int(d.seq), nil
}
