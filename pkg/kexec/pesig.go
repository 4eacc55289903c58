package kexec

import (
	"crypto/x509"
	"debug/pe"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// WIN_CERTIFICATE values from the PE/COFF specification: an Authenticode
// signature is a revision 2.0 entry of type PKCS_SIGNED_DATA. The table
// size limit only guards the allocation, because a real kernel signature
// takes one or two KiB.
const (
	winCertHeaderLen       = 8
	winCertRevision2       = 0x0200
	winCertTypePKCSSigned  = 0x0002
	maxCertificateTableLen = 1 << 20
)

// Signature describes the Authenticode signature of an EFI-stub kernel:
// the certificate table that the security entry of the PE optional
// header's data directory points at. kexec_file_load verifies this
// signature when the running kernel enforces kexec signatures.
type Signature struct {
	// PE is whether the image has a PE header at all. A bzImage built
	// without the EFI stub has none and so cannot carry a signature.
	PE bool
	// Offset and Size locate the certificate table in the file. Size is
	// 0 when the image is unsigned.
	Offset, Size int64
	// Signers are the certificates in the first PKCS#7 SignedData of
	// the table, in the order the signature lists them.
	Signers []Signer
}

// Signer is a certificate carried by a signature.
type Signer struct {
	Subject string // common name, else organization
	Issuer  string // common name, else organization
	// SubjectKeyID identifies the certificate's own key, and
	// AuthorityKeyID the key of its issuer. The kernel trusts the
	// signature when either key is among its trusted keys, which it
	// looks up by these identifiers.
	SubjectKeyID, AuthorityKeyID []byte
}

// Signed reports whether the image carries a certificate table.
func (s Signature) Signed() bool { return s.Size > 0 }

// ReadSignature reads the Authenticode certificate table of the kernel
// image at path. It checks the table's place and WIN_CERTIFICATE header
// but not the signature itself, which only the kernel can check against
// its keys. For an image without a PE header it returns a zero Signature.
func ReadSignature(path string) (Signature, error) {
	f, err := os.Open(path)
	if err != nil {
		return Signature{}, fmt.Errorf("read signature: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Signature{}, fmt.Errorf("read signature of %s: %w", path, err)
	}
	sig, err := ParseSignature(f, st.Size())
	if err != nil {
		return Signature{}, fmt.Errorf("read signature of %s: %w", path, err)
	}
	return sig, nil
}

// ParseSignature reads the certificate table of the kernel image that r
// holds, size bytes long, as ReadSignature does.
func ParseSignature(r io.ReaderAt, size int64) (Signature, error) {
	var mz [2]byte
	if _, err := r.ReadAt(mz[:], 0); err != nil || string(mz[:]) != "MZ" {
		return Signature{}, nil
	}
	f, err := pe.NewFile(r)
	if err != nil {
		return Signature{}, fmt.Errorf("parse PE header: %w", err)
	}
	dir, ok := securityDirectory(f.OptionalHeader)
	if !ok || dir.Size == 0 {
		return Signature{PE: true}, nil
	}
	// N.B. The security entry's VirtualAddress is a file offset, not an
	// address, because the certificate table is not loaded into memory.
	sig := Signature{PE: true, Offset: int64(dir.VirtualAddress), Size: int64(dir.Size)}
	if sig.Offset+sig.Size > size || sig.Size < winCertHeaderLen || sig.Size > maxCertificateTableLen {
		return Signature{}, fmt.Errorf("certificate table [%d, +%d) does not fit in the %d-byte file",
			sig.Offset, sig.Size, size)
	}
	table := make([]byte, sig.Size)
	if _, err := r.ReadAt(table, sig.Offset); err != nil {
		return Signature{}, fmt.Errorf("read certificate table at %d: %w", sig.Offset, err)
	}
	pkcs7, err := firstSignedData(table)
	if err != nil {
		return Signature{}, err
	}
	sig.Signers, err = parseSigners(pkcs7)
	if err != nil {
		return Signature{}, fmt.Errorf("parse the certificate table's PKCS#7 SignedData: %w", err)
	}
	return sig, nil
}

// securityDirectory returns the certificate table entry of the PE
// optional header's data directory, if it has one.
func securityDirectory(h any) (pe.DataDirectory, bool) {
	const entry = pe.IMAGE_DIRECTORY_ENTRY_SECURITY
	switch h := h.(type) {
	case *pe.OptionalHeader64:
		if h.NumberOfRvaAndSizes > entry {
			return h.DataDirectory[entry], true
		}
	case *pe.OptionalHeader32:
		if h.NumberOfRvaAndSizes > entry {
			return h.DataDirectory[entry], true
		}
	}
	return pe.DataDirectory{}, false
}

// firstSignedData returns the PKCS#7 content of the table's first
// WIN_CERTIFICATE entry: dwLength, wRevision, wCertificateType, content.
func firstSignedData(table []byte) ([]byte, error) {
	length := binary.LittleEndian.Uint32(table[0:])
	revision := binary.LittleEndian.Uint16(table[4:])
	certType := binary.LittleEndian.Uint16(table[6:])
	if length < winCertHeaderLen || int64(length) > int64(len(table)) {
		return nil, fmt.Errorf("certificate table entry of %d bytes in a %d-byte table", length, len(table))
	}
	if revision != winCertRevision2 || certType != winCertTypePKCSSigned {
		return nil, fmt.Errorf("certificate table entry has revision 0x%04x, type %d, want 0x0200, type 2 (PKCS#7 SignedData)",
			revision, certType)
	}
	return table[winCertHeaderLen:length], nil
}

// contentInfo and signedData are the outer structures of PKCS#7 (RFC
// 2315), with only the certificates decoded.
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	ContentInfo      asn1.RawValue
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      asn1.RawValue
}

var oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}

var errNoCertificates = errors.New("no certificates")

// parseSigners returns the certificates of a DER PKCS#7 SignedData.
func parseSigners(der []byte) ([]Signer, error) {
	var ci contentInfo
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return nil, fmt.Errorf("ContentInfo: %w", err)
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, fmt.Errorf("content type %v, want SignedData %v", ci.ContentType, oidSignedData)
	}
	var sd signedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, fmt.Errorf("SignedData: %w", err)
	}
	if len(sd.Certificates.Bytes) == 0 {
		return nil, errNoCertificates
	}
	certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil {
		return nil, err
	}
	signers := make([]Signer, 0, len(certs))
	for _, c := range certs {
		signers = append(signers, Signer{
			Subject:        displayName(c.Subject.CommonName, c.Subject.Organization),
			Issuer:         displayName(c.Issuer.CommonName, c.Issuer.Organization),
			SubjectKeyID:   c.SubjectKeyId,
			AuthorityKeyID: c.AuthorityKeyId,
		})
	}
	return signers, nil
}

func displayName(commonName string, organization []string) string {
	if commonName != "" || len(organization) == 0 {
		return commonName
	}
	return organization[0]
}
