import Testing
import Worker

/// Issue 12 item 7: a final error says "gave up", never also "will be retried".
@Suite struct RetryPromiseTests {
    @Test("the retry promise is dropped from a message the queue gives up on", arguments: [
        ("CloudStack at http://cs/client/api could not be reached for createVolume (refused): check CLOUDSTACK_API_URL and the network; the operation will be retried",
         "CloudStack at http://cs/client/api could not be reached for createVolume (refused): check CLOUDSTACK_API_URL and the network"),
        ("a database statement failed (deadlock detected); it will be retried", "a database statement failed (deadlock detected)"),
        ("volume 3f created by this operation no longer exists in CloudStack; the create will be retried",
         "volume 3f created by this operation no longer exists in CloudStack"),
        ("no promise here", "no promise here"),
    ])
    func dropsThePromise(message: String, expected: String) {
        #expect(withoutRetryPromise(message) == expected)
        #expect(!withoutRetryPromise(message).contains("will be retried"))
    }
}
