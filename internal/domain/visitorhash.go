package domain

import "math/bits"

// Hash returns a 64-bit hash of the id's bytes, for sets that keep hashes
// instead of ids.
//
// The function is fixed: it has no random seed and depends on nothing but the
// bytes of the id, so a hash means the same in every process, on every
// machine and in every version of this program. Hashes are persisted and
// shared between processes, so changing the function is a data migration,
// not a refactoring; the golden values in the tests guard it.
//
// Hash never returns 0, so that stores can use 0 to mark an empty slot: the
// one in 2^64 id whose hash would be 0 gets zeroHash instead (and so shares
// that value with the ids that hash to it, a negligible extra collision).
//
// Distinct ids can collide, with probability about n²/2^65 among n ids (for
// a billion ids of one page, about 3%, for a million, about 3e-8), so a
// count of distinct hashes is exact for every practical purpose.
func (v VisitorID) Hash() uint64 { return v.hash }

// hashID is the hash of an id's bytes; see VisitorID.Hash.
func hashID[S ~string | ~[]byte](id S) uint64 {
	return nonZero(finalize(wyhash(id, 0)))
}

// nonZero maps 0 to zeroHash and leaves every other hash as it is.
func nonZero(h uint64) uint64 {
	if h == 0 {
		return zeroHash
	}
	return h
}

// zeroHash stands in for a hash of 0. Any fixed non-zero value does; this is
// the 64-bit golden ratio.
const zeroHash = 0x9e3779b97f4a7c15

// The secret of wyhash final 3, from its reference implementation.
const (
	wyp0 = 0xa0761d6478bd642f
	wyp1 = 0xe7037ed1a0b428db
	wyp2 = 0x8ebc6af09c88c6e3
	wyp3 = 0x589965cc75374cc3
)

// wyhash is wyhash final 3 (Wang Yi, public domain) with its default secret:
// a multiply-fold of 16 bytes (two 8-byte words) per step, three independent
// lanes above 48 bytes. The tests check it against the reference test vectors.
func wyhash[S ~string | ~[]byte](s S, seed uint64) uint64 {
	n := len(s)
	seed ^= wyp0
	var a, b uint64
	switch {
	case n == 0:
	case n < 4:
		// Ids of 1 to 3 bytes: the first, middle and last byte cover them.
		a = uint64(s[0])<<16 | uint64(s[n>>1])<<8 | uint64(s[n-1])
	case n <= 16:
		// Two pairs of overlapping 4-byte reads cover 4 to 16 bytes without
		// a loop or a branch on the exact length.
		q := (n >> 3) << 2
		a = uint64(read4(s, 0))<<32 | uint64(read4(s, q))
		b = uint64(read4(s, n-4))<<32 | uint64(read4(s, n-4-q))
	default:
		p, i := 0, n
		if i > 48 {
			see1, see2 := seed, seed
			for i > 48 {
				seed = mix(read8(s, p)^wyp1, read8(s, p+8)^seed)
				see1 = mix(read8(s, p+16)^wyp2, read8(s, p+24)^see1)
				see2 = mix(read8(s, p+32)^wyp3, read8(s, p+40)^see2)
				p += 48
				i -= 48
			}
			seed ^= see1 ^ see2
		}
		for i > 16 {
			seed = mix(read8(s, p)^wyp1, read8(s, p+8)^seed)
			p += 16
			i -= 16
		}
		// The last 16 bytes, overlapping what the loop saw if need be.
		a = read8(s, p+i-16)
		b = read8(s, p+i-8)
	}
	return mix(wyp1^uint64(n), mix(a^wyp1, b^seed))
}

// mix multiplies a and b into 128 bits and folds the halves together.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// finalize is Stafford's Mix13 (the splitmix64 finalizer), a bijection with
// full avalanche. wyhash alone passes SMHasher; this is cheap insurance, since
// stores take slot indexes and stripes straight from the low and high bits.
func finalize(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// read8 reads 8 bytes of s at i, little-endian. The compiler merges the byte
// loads into one, and the first index check spares the others.
func read8[S ~string | ~[]byte](s S, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// read4 reads 4 bytes of s at i, little-endian.
func read4[S ~string | ~[]byte](s S, i int) uint32 {
	s = s[i : i+4]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}
