//go:build armbe || arm64be || m68k || mips || mips64 || mips64p32 || ppc || ppc64 || s390 || s390x || shbe || sparc || sparc64

package memstore

// The day tables are written as native 16-bit words and read back by scan,
// estimatedScan and orInto as little-endian 32- and 64-bit words: on a
// big-endian machine the counts would be wrong, so the package does not
// build there.
var _ int = "memstore reads its tables little-endian: big-endian machines are not supported"
