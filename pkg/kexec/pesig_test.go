package kexec

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// PE32+ layout of the test images: a 0x40-byte DOS header, the "PE\0\0"
// signature, a 20-byte COFF header and a 240-byte optional header with
// 16 data directory entries.
const (
	testPEOffset   = 0x40
	testOptOffset  = testPEOffset + 4 + 20
	testOptSize    = 240
	testHeadersEnd = testOptOffset + testOptSize
	testSecurity   = testOptOffset + 112 + 4*8 // security entry
)

// peImage returns a PE32+ image without sections, whose data directory
// points at table appended after body bytes of padding. A nil table
// leaves the security entry zero.
func peImage(body int, table []byte) []byte {
	img := make([]byte, testHeadersEnd+body)
	copy(img, "MZ")
	binary.LittleEndian.PutUint32(img[0x3c:], testPEOffset)
	copy(img[testPEOffset:], "PE\x00\x00")
	coff := img[testPEOffset+4:]
	binary.LittleEndian.PutUint16(coff[0:], 0x8664) // Machine: x86-64
	binary.LittleEndian.PutUint16(coff[16:], testOptSize)
	binary.LittleEndian.PutUint16(coff[18:], 0x0022) // executable, large address aware
	opt := img[testOptOffset:]
	binary.LittleEndian.PutUint16(opt[0:], 0x20b) // PE32+
	binary.LittleEndian.PutUint32(opt[108:], 16)  // NumberOfRvaAndSizes
	if table != nil {
		binary.LittleEndian.PutUint32(img[testSecurity:], uint32(len(img)))
		binary.LittleEndian.PutUint32(img[testSecurity+4:], uint32(len(table)))
		img = append(img, table...)
	}
	return img
}

// winCertificate wraps content in a WIN_CERTIFICATE entry padded to 8
// bytes, as signing tools write it.
func winCertificate(revision, certType uint16, content []byte) []byte {
	b := make([]byte, 8, 8+len(content)+7)
	binary.LittleEndian.PutUint32(b[0:], uint32(8+len(content)))
	binary.LittleEndian.PutUint16(b[4:], revision)
	binary.LittleEndian.PutUint16(b[6:], certType)
	b = append(b, content...)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

// testCertificates returns a CA and a signer certificate that it issued,
// in DER, with the keys' subject key IDs.
func testCertificates(t *testing.T) (ca, signer []byte, caKeyID, signerKeyID []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	caKeyID, signerKeyID = []byte{0xca, 1, 2, 3}, []byte{0x51, 4, 5, 6}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Secure Boot CA"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		SubjectKeyId: caKeyID,
	}
	ca, err = x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}

	signerTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{Organization: []string{"Test Kernel Signer"}},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0),
		SubjectKeyId: signerKeyID,
	}
	caCert, err := x509.ParseCertificate(ca)
	if err != nil {
		t.Fatal(err)
	}
	signer, err = x509.CreateCertificate(rand.Reader, signerTmpl, caCert, &signerKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return ca, signer, caKeyID, signerKeyID
}

// pkcs7SignedData returns a DER PKCS#7 ContentInfo of type SignedData that
// carries certs and no signer infos: enough for ReadSignature, which
// does not verify the signature.
func pkcs7SignedData(t *testing.T, certs ...[]byte) []byte {
	t.Helper()
	marshal := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	emptySet := asn1.RawValue{FullBytes: []byte{0x31, 0x00}}
	type data struct{ ContentType asn1.ObjectIdentifier }
	sd := struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		ContentInfo      asn1.RawValue
		Certificates     asn1.RawValue
		SignerInfos      asn1.RawValue
	}{
		Version:          1,
		DigestAlgorithms: emptySet,
		ContentInfo:      asn1.RawValue{FullBytes: marshal(data{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}})},
		Certificates: asn1.RawValue{FullBytes: marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0,
			IsCompound: true, Bytes: bytes.Join(certs, nil)})},
		SignerInfos: emptySet,
	}
	ci := struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue
	}{oidSignedData, asn1.RawValue{FullBytes: marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0,
		IsCompound: true, Bytes: marshal(sd)})}}
	return marshal(ci)
}

func TestReadSignature(t *testing.T) {
	ca, signer, caKeyID, signerKeyID := testCertificates(t)
	pkcs7 := pkcs7SignedData(t, signer, ca)
	signed := peImage(100, winCertificate(0x0200, 2, pkcs7))
	for _, tt := range []struct {
		name    string
		image   []byte
		want    Signature
		wantErr string // substring of the error; empty for none
	}{
		{name: "not PE", image: []byte("HdrS and no MZ header at all"), want: Signature{}},
		{name: "unsigned PE", image: peImage(100, nil), want: Signature{PE: true}},
		{name: "signed PE", image: signed, want: Signature{
			PE: true, Offset: testHeadersEnd + 100, Size: int64(len(signed) - testHeadersEnd - 100),
			Signers: []Signer{
				{Subject: "Test Kernel Signer", Issuer: "Test Secure Boot CA",
					SubjectKeyID: signerKeyID, AuthorityKeyID: caKeyID},
				{Subject: "Test Secure Boot CA", Issuer: "Test Secure Boot CA", SubjectKeyID: caKeyID},
			},
		}},
		{name: "table past the end", image: signed[:len(signed)-8], wantErr: "does not fit in the"},
		{name: "wrong revision", image: peImage(100, winCertificate(0x0100, 2, pkcs7)),
			wantErr: "revision 0x0100, type 2"},
		{name: "X.509 type", image: peImage(100, winCertificate(0x0200, 1, pkcs7)),
			wantErr: "revision 0x0200, type 1"},
		{name: "not PKCS#7", image: peImage(100, winCertificate(0x0200, 2, []byte{0x30, 0x03, 0x02, 0x01, 0x05})),
			wantErr: "PKCS#7 SignedData"},
		{name: "no certificates", image: peImage(100, winCertificate(0x0200, 2, pkcs7SignedData(t))),
			wantErr: "no certificates"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vmlinuz")
			if err := os.WriteFile(path, tt.image, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadSignature(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadSignature(%s) = %v, want an error containing %q", tt.name, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadSignature(%s) = %v, want nil error", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ReadSignature(%s) mismatch (-want +got):\n%s", tt.name, diff)
			}
			if got.Signed() != (tt.want.Size > 0) {
				t.Errorf("ReadSignature(%s).Signed() = %v, want %v", tt.name, got.Signed(), tt.want.Size > 0)
			}
		})
	}
}

// TestReadSignatureDebianKernel reads the signature of a Debian kernel
// of the test images, when ./build.sh setup has built them.
func TestReadSignatureDebianKernel(t *testing.T) {
	dir := os.Getenv("KSU_IMAGES")
	if dir == "" {
		t.Skip("skipping: KSU_IMAGES not set; ./build.sh setup builds the images")
	}
	kernels, err := filepath.Glob(filepath.Join(dir, "kernels", "*", "vmlinuz"))
	if err != nil || len(kernels) == 0 {
		t.Fatalf("no kernels in %s/kernels: %v", dir, err)
	}
	for _, k := range kernels {
		sig, err := ReadSignature(k)
		if err != nil {
			t.Fatalf("ReadSignature(%s) = %v, want nil error", k, err)
		}
		if len(sig.Signers) == 0 || !strings.HasPrefix(sig.Signers[0].Subject, "Debian Secure Boot Signer") {
			t.Errorf("ReadSignature(%s) signers = %+v, want Debian Secure Boot Signer first", k, sig.Signers)
		}
		t.Logf("%s: table at %d, %d bytes, signers %+v", k, sig.Offset, sig.Size, sig.Signers)
	}
}
