import CloudStack
import Foundation
import Operations
import Testing

/// The vectors in CLOUDSTACK.md (from the exoscale `cs` client's tests, recomputed with
/// ApiServer.verifyRequest's algorithm): exact string-to-sign and exact signature.
@Suite("CloudStack request signing")
struct CloudStackSignerTests {
    let signer = CloudStackSigner(apiKey: "foo", secretKey: "bar")

    @Test("vector 1: plain listVirtualMachines")
    func plainVector() {
        let parameters: [(name: String, value: String)] = [
            ("command", "listVirtualMachines"), ("apiKey", "foo"), ("listall", "true"), ("response", "json"),
        ]
        #expect(CloudStackSigner.stringToSign(parameters) == "apikey=foo&command=listvirtualmachines&listall=true&response=json")
        #expect(signer.signature(for: parameters) == "B0d6hBsZTcFVCiioSxzwKA9Pke8=")
    }

    @Test("vector 2: non-ASCII values are percent-encoded as UTF-8 before lower-casing")
    func unicodeVector() {
        let parameters: [(name: String, value: String)] = [
            ("command", "listVirtualMachines"), ("apiKey", "foo"), ("listall", "1"), ("unicode_param", "éèààû"), ("response", "json"),
        ]
        #expect(
            CloudStackSigner.stringToSign(parameters)
                == "apikey=foo&command=listvirtualmachines&listall=1&response=json&unicode_param=%c3%a9%c3%a8%c3%a0%c3%a0%c3%bb"
        )
        #expect(signer.signature(for: parameters) == "gABU/KFJKD3FLAgKDuxQoryu4sA=")
    }

    @Test("vector 3: signatureVersion 3 with expires")
    func version3Vector() {
        let parameters: [(name: String, value: String)] = [
            ("apiKey", "foo"), ("command", "attachVolume"), ("id", "60338035-92fb-4d27-98d4-b60ad4b38b87"),
            ("virtualmachineid", "ab2c18f6-00a6-43f8-9fe0-efecb3165dd7"), ("response", "json"),
            ("signatureVersion", "3"), ("expires", "2030-01-01T00:00:00+0000"),
        ]
        #expect(
            CloudStackSigner.stringToSign(parameters)
                == "apikey=foo&command=attachvolume&expires=2030-01-01t00%3a00%3a00%2b0000&id=60338035-92fb-4d27-98d4-b60ad4b38b87"
                + "&response=json&signatureversion=3&virtualmachineid=ab2c18f6-00a6-43f8-9fe0-efecb3165dd7"
        )
        #expect(signer.signature(for: parameters) == "Nb60oDWXpNUiD5iGhh1jAjiBKXg=")
    }

    @Test("the signed query for vector 3 carries that signature, URL-encoded, last")
    func signedQueryMatchesVector() {
        let expires = Date(timeIntervalSince1970: 1_893_456_000)  // 2030-01-01T00:00:00Z
        let signed = signer.signedQuery(
            command: "attachVolume",
            parameters: [("id", "60338035-92fb-4d27-98d4-b60ad4b38b87"), ("virtualmachineid", "ab2c18f6-00a6-43f8-9fe0-efecb3165dd7")],
            expires: expires
        )
        #expect(signed.signature == "Nb60oDWXpNUiD5iGhh1jAjiBKXg=")
        #expect(signed.query.hasSuffix("&signature=Nb60oDWXpNUiD5iGhh1jAjiBKXg%3D"))
        #expect(signed.query.contains("expires=2030-01-01T00%3A00%3A00%2B0000"))
    }

    @Test("Java URLEncoder rules: only A-Za-z0-9.-*_ literal, space %20, plus %2B")
    func javaURLEncoding() {
        #expect(CloudStackSigner.javaURLEncode("a-b_c.d*e") == "a-b_c.d*e")
        #expect(CloudStackSigner.javaURLEncode("a b") == "a%20b")
        #expect(CloudStackSigner.javaURLEncode("a+b") == "a%2Bb")
        #expect(CloudStackSigner.javaURLEncode("~/=&") == "%7E%2F%3D%26")
        #expect(CloudStackSigner.javaURLEncode("é") == "%C3%A9")
    }

    @Test("names sort case-sensitively: upper-case before lower-case, as Collections.sort")
    func caseSensitiveSort() {
        let query = CloudStackSigner.canonicalQuery([("b", "1"), ("B", "2"), ("a", "3"), ("signature", "ignored")])
        #expect(query == "B=2&a=3&b=1")
    }

    @Test("expires is ISO-8601 in UTC with a +0000 offset")
    func expiresFormat() {
        #expect(CloudStackSigner.formatExpires(Date(timeIntervalSince1970: 1_893_456_000)) == "2030-01-01T00:00:00+0000")
    }

    @Test("configuration descriptions redact the secret key")
    func configurationRedactsSecret() {
        let configuration = CloudStackConfiguration(apiURL: "http://cs/client/api", apiKey: "key", secretKey: "s3cr3t-value")
        #expect(!configuration.description.contains("s3cr3t-value"))
        #expect(!configuration.debugDescription.contains("s3cr3t-value"))
        #expect(!String(reflecting: configuration).contains("s3cr3t-value"))
        #expect(configuration.description.contains("<redacted>"))
    }
}
