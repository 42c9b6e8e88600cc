// Package snapshot is the binary encoding of model state: a small encoder
// and decoder for the flat arrays the models are made of, with sticky errors
// so that model code reads as a list of fields.
//
// Invariant: a decoder never panics and never allocates more than the bytes
// it was given can justify; malformed input is an error.
package snapshot

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// ErrCorrupt is returned for input that is not a snapshot this code wrote.
var ErrCorrupt = errors.New("snapshot: corrupt")

// Encoder writes values in little-endian order.
type Encoder struct {
	w   *bufio.Writer
	err error
	buf [binary.MaxVarintLen64]byte
}

// NewEncoder returns an encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: bufio.NewWriterSize(w, 1<<20)} }

// Flush writes buffered data and returns the first error.
func (e *Encoder) Flush() error {
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.err
}

// Uint writes an unsigned varint.
func (e *Encoder) Uint(v uint64) {
	if e.err == nil {
		n := binary.PutUvarint(e.buf[:], v)
		_, e.err = e.w.Write(e.buf[:n])
	}
}

// Float64 writes a float64.
func (e *Encoder) Float64(v float64) { e.Uint(math.Float64bits(v)) }

// String writes a length-prefixed string.
func (e *Encoder) String(s string) {
	e.Uint(uint64(len(s)))
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

// Bytes writes a length-prefixed byte slice.
func (e *Encoder) Bytes(b []byte) {
	e.Uint(uint64(len(b)))
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

// Slice writes a length-prefixed slice of fixed-size numbers ([]int32,
// []uint32, []float32, []float64, []uint64, []uint8).
func (e *Encoder) Slice(s any, n int) {
	e.Uint(uint64(n))
	if e.err == nil {
		e.err = binary.Write(e.w, binary.LittleEndian, s)
	}
}

// Decoder reads what an Encoder wrote.
type Decoder struct {
	r   *bufio.Reader
	err error
	// left bounds allocations by the bytes actually available.
	left int64
}

// NewDecoder returns a decoder of the size bytes read from r.
func NewDecoder(r io.Reader, size int64) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 1<<20), left: size}
}

// Err is the first error met.
func (d *Decoder) Err() error { return d.err }

func (d *Decoder) fail(err error) {
	if d.err == nil {
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			err = fmt.Errorf("%w: truncated", ErrCorrupt)
		case !errors.Is(err, ErrCorrupt):
			// A read error or a malformed varint: either way this snapshot
			// cannot be used.
			err = fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		d.err = err
	}
}

// Uint reads an unsigned varint.
func (d *Decoder) Uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		d.fail(err)
		return 0
	}
	d.left--
	return v
}

// Float64 reads a float64.
func (d *Decoder) Float64() float64 { return math.Float64frombits(d.Uint()) }

// Len reads a length and checks that elemSize bytes each can be there.
func (d *Decoder) Len(elemSize int) int {
	n := d.Uint()
	if d.err == nil && (n > uint64(d.left)/uint64(max(elemSize, 1)) || n > math.MaxInt32) {
		d.fail(fmt.Errorf("%w: length %d beyond the data", ErrCorrupt, n))
		return 0
	}
	return int(n)
}

// String reads a length-prefixed string.
func (d *Decoder) String() string { return string(d.Bytes()) }

// Bytes reads a length-prefixed byte slice.
func (d *Decoder) Bytes() []byte {
	n := d.Len(1)
	if d.err != nil {
		return nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.fail(err)
		return nil
	}
	d.left -= int64(n)
	return b
}

// Int32s reads a []int32.
func Int32s(d *Decoder) []int32 { return readSlice[int32](d, 4) }

// Uint32s reads a []uint32.
func Uint32s(d *Decoder) []uint32 { return readSlice[uint32](d, 4) }

// Float32s reads a []float32.
func Float32s(d *Decoder) []float32 { return readSlice[float32](d, 4) }

// Float64s reads a []float64.
func Float64s(d *Decoder) []float64 { return readSlice[float64](d, 8) }

// Uint64s reads a []uint64.
func Uint64s(d *Decoder) []uint64 { return readSlice[uint64](d, 8) }

// Uint8s reads a []uint8.
func Uint8s(d *Decoder) []uint8 { return readSlice[uint8](d, 1) }

func readSlice[T int32 | uint32 | float32 | float64 | uint64 | uint8](d *Decoder, size int) []T {
	n := d.Len(size)
	if d.err != nil {
		return nil
	}
	s := make([]T, n)
	if err := binary.Read(d.r, binary.LittleEndian, s); err != nil {
		d.fail(err)
		return nil
	}
	d.left -= int64(n * size)
	return s
}

// Check fails the decoder with a corruption error when ok is false.
func (d *Decoder) Check(ok bool, what string) {
	if !ok {
		d.fail(fmt.Errorf("%w: %s", ErrCorrupt, what))
	}
}
