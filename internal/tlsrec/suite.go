package tlsrec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	ivLen      = 12 // every TLS 1.3 AEAD takes a 96-bit nonce (RFC 8446 §5.3)
	tagLen     = 16 // and appends a 128-bit tag
	maxHashLen = sha512.Size384
)

// suite is what a TLS 1.3 cipher suite fixes for the record layer: the
// AEAD's key length and the hash of the key schedule.
type suite struct {
	keyLen  int
	hashLen int
	hash    func() hash.Hash
	chacha  bool
	// limitLog is log2 of the records one key may seal. AES-GCM may seal
	// 2^24.5 full-size records per key with a safety margin of 2^-57
	// (RFC 8446 §5.5); 2^24 leaves room to spare. ChaCha20-Poly1305 has no
	// practical limit: its sequence numbers only must not wrap.
	limitLog uint8
}

var (
	suiteAES128 = suite{keyLen: 16, hashLen: sha256.Size, hash: sha256.New, limitLog: 24}
	suiteAES256 = suite{keyLen: 32, hashLen: sha512.Size384, hash: sha512.New384, limitLog: 24}
	suiteChaCha = suite{keyLen: chacha20poly1305.KeySize, hashLen: sha256.Size, hash: sha256.New, chacha: true, limitLog: 64}
)

// ErrUnknownSuite reports a cipher suite that is not one of TLS 1.3's three.
var ErrUnknownSuite = errors.New("tlsrec: not a TLS 1.3 cipher suite")

func suiteByID(id uint16) (*suite, error) {
	switch id {
	case tls.TLS_AES_128_GCM_SHA256:
		return &suiteAES128, nil
	case tls.TLS_AES_256_GCM_SHA384:
		return &suiteAES256, nil
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		return &suiteChaCha, nil
	}
	return nil, fmt.Errorf("%w: %#04x", ErrUnknownSuite, id)
}

// seqLimit is the sequence number at which a sender updates its key
// before sealing anything more. For ChaCha20-Poly1305 it is 2^64-2, so
// that the KeyUpdate itself goes out below 2^64-1, which a receiver
// refuses.
func (s *suite) seqLimit(limitLog uint8) uint64 {
	if limitLog >= 64 {
		return math.MaxUint64 - 1
	}
	return 1 << limitLog
}

// expandLabel is HKDF-Expand-Label with an empty context (RFC 8446 §7.1):
// the only kind the record layer needs.
func (s *suite) expandLabel(secret []byte, label string, length int) []byte {
	const prefix = "tls13 "
	info := make([]byte, 0, 2+1+len(prefix)+len(label)+1)
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(s.hash, secret, string(info), length)
	if err != nil {
		// Only a length beyond 255 hash blocks fails, and none here is.
		panic("tlsrec: " + err.Error())
	}
	return out
}

// nextSecret derives application_traffic_secret_N+1 from _N (RFC 8446 §7.2).
func (s *suite) nextSecret(secret []byte) []byte {
	return s.expandLabel(secret, "traffic upd", s.hashLen)
}

// trafficKeys derives the AEAD and the IV a traffic secret protects
// records with (RFC 8446 §7.3).
func (s *suite) trafficKeys(secret []byte) (cipher.AEAD, [ivLen]byte, error) {
	var iv [ivLen]byte
	key := s.expandLabel(secret, "key", s.keyLen)
	copy(iv[:], s.expandLabel(secret, "iv", ivLen))
	if s.chacha {
		aead, err := chacha20poly1305.New(key)
		return aead, iv, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, iv, err
	}
	aead, err := cipher.NewGCM(block)
	return aead, iv, err
}
