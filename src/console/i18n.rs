//! Every label of the console, in Vietnamese (the default) and English, in one table, so a
//! missing translation is a failing unit test rather than an English word on a Vietnamese page.

use std::str::FromStr;

/// The language of a console page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Vietnamese, the language of the people who run the portal.
    #[default]
    Vi,
    En,
}

impl Lang {
    /// The BCP 47 code, for `<html lang>` and the `lang` cookie.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// The other language, which the language switch offers.
    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }
}

impl FromStr for Lang {
    type Err = ();

    fn from_str(value: &str) -> Result<Lang, ()> {
        match value {
            "vi" => Ok(Lang::Vi),
            "en" => Ok(Lang::En),
            _ => Err(()),
        }
    }
}

/// Generates the `T` enum from `Key => ("tiếng Việt", "English")` lines.
macro_rules! texts {
    ($($key:ident => ($vi:expr, $en:expr)),* $(,)?) => {
        /// A label of the console; [`T::get`] gives its text in a language.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum T {
            $($key,)*
        }

        impl T {
            /// Every label, for the completeness test.
            pub const ALL: &'static [T] = &[$(T::$key,)*];

            /// The label's text in `lang`.
            pub fn get(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $(
                        (T::$key, Lang::Vi) => $vi,
                        (T::$key, Lang::En) => $en,
                    )*
                }
            }
        }
    };
}

texts! {
    // -- common --
    AppName => ("Cổng thanh toán — Bảng điều khiển", "Payment gateway — Console"),
    SkipToContent => ("Chuyển đến nội dung chính", "Skip to main content"),
    MainNavigation => ("Điều hướng chính", "Main navigation"),
    NavOverview => ("Tổng quan", "Overview"),
    NavReconciliation => ("Đối soát", "Reconciliation"),
    NavCases => ("Hồ sơ xử lý", "Cases"),
    NavNotifications => ("Thông báo", "Notifications"),
    NavParties => ("Cơ quan và ngân hàng", "Agencies and banks"),
    NavAudit => ("Nhật ký kiểm tra", "Audit log"),
    SwitchLanguage => ("English", "Tiếng Việt"),
    SignedInAs => ("Đăng nhập với", "Signed in as"),
    RoleAdmin => ("Quản trị viên", "Administrator"),
    RoleAuditor => ("Kiểm toán viên", "Auditor"),
    RoleAgency => ("Cơ quan", "Agency"),
    SignOut => ("Đăng xuất", "Sign out"),
    VietnamTime => ("Giờ Việt Nam (UTC+7)", "Vietnam time (UTC+7)"),
    Filter => ("Lọc", "Filter"),
    ClearFilters => ("Xóa bộ lọc", "Clear filters"),
    NextPage => ("Trang sau", "Next page"),
    FirstPage => ("Trang đầu", "First page"),
    Pages => ("Phân trang", "Pages"),
    Any => ("Tất cả", "Any"),
    Yes => ("Có", "Yes"),
    No => ("Không", "No"),
    NoneShown => ("Không có", "None"),
    Nothing => ("Không có dữ liệu.", "Nothing to show."),
    Total => ("Tổng cộng", "Total"),
    Count => ("Số lượng", "Count"),
    Amount => ("Số tiền", "Amount"),
    Date => ("Ngày", "Date"),
    Time => ("Thời gian", "Time"),
    Status => ("Trạng thái", "Status"),
    Bank => ("Ngân hàng", "Bank"),
    Agency => ("Cơ quan", "Agency"),
    Obligation => ("Loại nghĩa vụ", "Obligation"),
    Details => ("Chi tiết", "Details"),
    ErrorForbiddenTitle => ("Không được phép", "Not allowed"),
    ErrorForbidden => (
        "Vai trò của khóa này không được thực hiện thao tác này.",
        "This key's role may not do this."
    ),
    ErrorCsrfTitle => ("Yêu cầu bị từ chối", "Request refused"),
    ErrorCsrf => (
        "Biểu mẫu đã hết hạn hoặc không đến từ bảng điều khiển. Hãy tải lại trang và thử lại.",
        "The form expired or did not come from the console. Reload the page and try again."
    ),
    ErrorNotFoundTitle => ("Không tìm thấy", "Not found"),
    ErrorNotFound => ("Trang hoặc bản ghi này không tồn tại.", "This page or record does not exist."),
    ErrorRefusedTitle => ("Thao tác bị từ chối", "Refused"),
    ErrorInternalTitle => ("Lỗi hệ thống", "Internal error"),
    ErrorInternal => (
        "Đã xảy ra lỗi. Hãy thử lại sau; nếu lỗi vẫn còn, hãy báo cho bộ phận vận hành.",
        "Something went wrong. Try again later; if it persists, tell the operations team."
    ),
    ErrorCodeLabel => ("Mã lỗi", "Error code"),
    BackToOverview => ("Về trang tổng quan", "Back to the overview"),
    SignInAgain => ("Đăng nhập lại", "Sign in again"),
    NoticeSuccess => ("Thành công", "Done"),
    NoticeError => ("Lỗi", "Error"),
    NoticeInfo => ("Thông tin", "Note"),
    // -- sign-in --
    SignInTitle => ("Đăng nhập", "Sign in"),
    SignInIntro => (
        "Đăng nhập bằng khóa API của quản trị viên hoặc kiểm toán viên. Khóa của cơ quan không dùng được ở đây.",
        "Sign in with an administrator's or auditor's API key. Agency keys cannot sign in here."
    ),
    ApiKey => ("Khóa API", "API key"),
    ApiKeyHint => (
        "Khóa không được lưu trong trình duyệt; phiên đăng nhập kéo dài tối đa 8 giờ.",
        "The key is not stored in the browser; a session lasts at most 8 hours."
    ),
    SignInButton => ("Đăng nhập", "Sign in"),
    SignInWrongKey => (
        "Khóa không đúng, đã bị thu hồi, hoặc là khóa của cơ quan. Chỉ quản trị viên và kiểm toán viên được đăng nhập.",
        "The key is wrong, revoked, or an agency's key. Only administrators and auditors can sign in."
    ),
    SignInExpiredForm => (
        "Biểu mẫu đăng nhập đã hết hạn. Hãy thử lại.",
        "The sign-in form expired. Try again."
    ),
    SignedOut => ("Bạn đã đăng xuất.", "You are signed out."),
    // -- overview --
    OverviewTitle => ("Tổng quan hôm nay", "Today at a glance"),
    BusinessDay => ("Ngày làm việc", "Business day"),
    PaidToday => ("Đã thanh toán hôm nay", "Paid today"),
    PaidOrders => ("Đơn đã thanh toán", "Paid orders"),
    PaidAmount => ("Số tiền đã thu", "Amount collected"),
    RefundsToday => ("Đã hoàn tiền hôm nay", "Refunded today"),
    RefundsCount => ("khoản hoàn tiền", "refunds"),
    ByObligation => ("Theo loại nghĩa vụ", "By obligation"),
    ByBank => ("Theo ngân hàng", "By bank"),
    ByAgency => ("Theo cơ quan", "By agency"),
    PerHour => ("Đơn đã thanh toán theo giờ", "Paid orders per hour"),
    PerHourDesc => (
        "Biểu đồ cột: số đơn đã thanh toán trong mỗi giờ của ngày hôm nay, giờ Việt Nam. Bảng bên dưới có cùng số liệu.",
        "Bar chart: paid orders in each hour of today, Vietnam time. The table below has the same figures."
    ),
    Hour => ("Giờ", "Hour"),
    ShowTable => ("Xem số liệu dạng bảng", "Show the figures as a table"),
    Attention => ("Cần chú ý", "Needs attention"),
    OpenCases => ("Hồ sơ đang mở", "Open cases"),
    DeadNotifications => ("Thông báo gửi thất bại", "Failed notifications"),
    UnsealedLag => ("Giao dịch sổ cái chưa niêm phong", "Unsealed ledger transactions"),
    OldestUnsealed => ("Cũ nhất chưa niêm phong", "Oldest unsealed"),
    PendingApprovals => ("Chờ phê duyệt", "Awaiting approval"),
    LiveOn => ("Đang tự động cập nhật", "Updating live"),
    LiveOff => ("Tạm ngừng cập nhật; tải lại trang để xem số liệu mới", "Live updates paused; reload for new figures"),
    UpdatedAt => ("Cập nhật lúc", "Updated at"),
    SandboxToday => (
        "Thử nghiệm (sandbox) hôm nay, không tính vào số liệu trên",
        "Sandbox today, not counted in the figures above"
    ),
    PaidOrdersLower => ("đơn đã thanh toán", "paid orders"),
    Checklist => ("Danh mục tích hợp", "Integration checklist"),
    Sandbox => ("Thử nghiệm", "Sandbox"),
    Ready => ("Sẵn sàng", "Ready"),
    Done => ("đã thực hiện", "done"),
    NotYet => ("chưa thực hiện", "not yet"),
    // -- audit --
    AuditTitle => ("Nhật ký kiểm tra", "Audit log"),
    AuditAction => ("Thao tác", "Action"),
    AuditKeyId => ("Mã khóa", "Key id"),
    AuditTarget => ("Đối tượng", "Target"),
    AuditFrom => ("Từ ngày", "From"),
    AuditTo => ("Đến ngày", "To"),
    AuditActor => ("Người thực hiện", "Actor"),
    AuditVia => ("Kênh", "Via"),
    AuditRequestId => ("Mã yêu cầu", "Request id"),
    AuditChain => ("Chuỗi nhật ký kiểm tra", "Audit chain"),
    LedgerChain => ("Chuỗi niêm phong sổ cái", "Ledger seal chain"),
    ChainIntact => ("Nguyên vẹn", "Intact"),
    ChainBroken => ("BỊ PHÁ VỠ", "BROKEN"),
    ChainEntries => ("Số bản ghi đã kiểm tra", "Entries checked"),
    ChainFirstBad => ("Bản ghi sai đầu tiên", "First bad entry"),
    Verification => ("Kết quả kiểm tra tính toàn vẹn", "Integrity check"),
    VerifyLedger => ("Kiểm tra cả sổ cái (đọc toàn bộ sổ cái, có thể mất thời gian)", "Check the ledger too (reads the whole ledger; may take a while)"),
    LedgerTransactions => ("Giao dịch sổ cái", "Ledger transactions"),
    Seals => ("Niêm phong đã kiểm tra", "Seals checked"),
    AuditEntries => ("Các bản ghi", "Entries"),
    InvalidFilters => ("Bộ lọc không hợp lệ", "Invalid filters"),
    // -- parties --
    PartiesTitle => ("Cơ quan và ngân hàng", "Agencies and banks"),
    Agencies => ("Cơ quan", "Agencies"),
    Banks => ("Ngân hàng", "Banks"),
    Code => ("Mã", "Code"),
    Name => ("Tên", "Name"),
    CreatedAt => ("Ngày tạo", "Created"),
    FirstOrder => ("Đơn đầu tiên", "First order"),
    FirstPaid => ("Thanh toán đầu tiên", "First paid order"),
    FirstCallback => ("Giao dịch báo về đầu tiên", "First callback"),
    LastActivity => ("Hoạt động gần nhất", "Last activity"),
    Disabled => ("Đã vô hiệu hóa", "Disabled"),
    Active => ("Đang hoạt động", "Active"),
    Never => ("Chưa có", "Never"),
    Share30 => (
        "Tỷ lệ cơ quan có đơn được thanh toán trong 30 ngày qua",
        "Share of agencies with a paid order in the last 30 days"
    ),
    // -- reconciliation --
    RecTitle => ("Đối soát", "Reconciliation"),
    RecRunsCaption => (
        "Các phiên đối soát theo ngân hàng và ngày, mới nhất trước",
        "Reconciliation runs by bank and day, newest first"
    ),
    RecNoRuns => ("Chưa có phiên đối soát nào.", "No reconciliation runs yet."),
    RecDay => ("Ngày đối soát", "Business day"),
    RecRunAt => ("Thời điểm chạy", "Run at"),
    RecLines => ("Số dòng sao kê", "Statement lines"),
    RecRunTitle => ("Phiên đối soát", "Reconciliation run"),
    RecRunId => ("Mã phiên", "Run id"),
    RecBackToRuns => ("← Danh sách phiên đối soát", "← All reconciliation runs"),
    RecDownloadReport => ("Tải báo cáo (report.csv)", "Download the report (report.csv)"),
    RecOutcomesCaption => ("Kết quả theo loại", "Outcomes"),
    RecByObligationCaption => (
        "Tiền đã khớp và đã bù ghi có cho cơ quan, theo loại nghĩa vụ",
        "Matched and recovered money credited to agencies, by obligation"
    ),
    RecOutcome => ("Kết quả", "Outcome"),
    RecAllOutcomes => ("Tất cả kết quả", "All outcomes"),
    RecItems => ("Các dòng", "Items"),
    RecNoItems => ("Không có dòng nào.", "No items."),
    RecLine => ("Dòng", "Line"),
    RecBankTxnId => ("Mã giao dịch ngân hàng", "Bank transaction id"),
    RecPaymentId => ("Mã lệnh thanh toán", "Payment id"),
    RecStatementAmount => ("Số tiền theo sao kê", "Statement amount"),
    RecGatewayAmount => ("Số tiền theo cổng", "Gateway amount"),
    RecDetail => ("Ghi chú", "Detail"),
    RecUploadTitle => ("Tải lên sao kê", "Upload a statement"),
    RecUploadAdminNote => (
        "Phiên của quản trị viên ghi nhận luôn các khoản ngân hàng đã thu mà cổng chưa nhận được thông báo (đã bù).",
        "An administrator's run applies the payments the bank collected whose callback paygate never received (recovered)."
    ),
    RecUploadAuditorNote => (
        "Phiên của kiểm toán viên chỉ báo cáo: khoản có thể bù được ghi là thiếu ở cổng với ghi chú recoverable, không chuyển tiền.",
        "An auditor's run only reports: a payment that could be recovered is shown as missing in gateway with the detail recoverable, and no money moves."
    ),
    RecStatementFile => ("Tệp sao kê (CSV)", "Statement file (CSV)"),
    RecUploadButton => ("Tải lên và đối soát", "Upload and reconcile"),
    OutcomeMatched => ("Khớp", "Matched"),
    OutcomeRecovered => ("Đã bù", "Recovered"),
    OutcomeMissingInGateway => ("Thiếu ở cổng", "Missing in gateway"),
    OutcomeMissingInBank => ("Thiếu ở ngân hàng", "Missing in bank"),
    OutcomeMismatch => ("Sai lệch", "Mismatch"),
    OutcomeDuplicateInStatement => ("Trùng trong sao kê", "Duplicate in statement"),
    OutcomeInvalidLine => ("Dòng không hợp lệ", "Invalid line"),
    // -- cases --
    CasesTitle => ("Hồ sơ xử lý (tra soát)", "Cases"),
    CasesCaption => ("Hồ sơ, mới nhất trước", "Cases, newest first"),
    CasesNone => ("Không có hồ sơ nào phù hợp.", "No matching cases."),
    CasesBack => ("← Danh sách hồ sơ", "← All cases"),
    CaseTitle => ("Hồ sơ", "Case"),
    CaseKind => ("Loại hồ sơ", "Kind"),
    CaseOpenedAt => ("Mở lúc", "Opened at"),
    CaseOpenedBy => ("Người mở", "Opened by"),
    CaseStatusOpen => ("Đang mở", "Open"),
    CaseStatusPendingApproval => ("Chờ phê duyệt", "Awaiting approval"),
    CaseStatusResolving => ("Đang xử lý hoàn tiền", "Refund under way"),
    CaseStatusResolved => ("Đã xử lý xong", "Resolved"),
    CaseKindDoublePayment => ("Thanh toán hai lần", "Double payment"),
    CaseKindOrderClosed => ("Thanh toán lệnh đã đóng", "Payment of a closed order"),
    CaseKindPaymentNotFound => ("Không tìm thấy lệnh", "Payment not found"),
    CaseKindAmountMismatch => ("Sai số tiền", "Amount mismatch"),
    CaseKindMissingInGateway => ("Thiếu ở cổng", "Missing in gateway"),
    CaseKindMissingInBank => ("Thiếu ở ngân hàng", "Missing in bank"),
    CaseKindMismatch => ("Sai lệch đối soát", "Reconciliation mismatch"),
    CaseKindInquiry => ("Yêu cầu tra soát", "Inquiry"),
    CaseSystemActor => ("Hệ thống (paygate)", "paygate itself"),
    CaseResolution => ("Cách xử lý", "Resolution"),
    CaseResolutionKind => ("Hình thức xử lý", "Resolution"),
    CaseResolutionAt => ("Thời điểm", "At"),
    CaseResolutionBy => ("Người chọn", "Chosen by"),
    CaseNote => ("Ghi chú", "Note"),
    CaseAppliedTo => ("Dùng cho lệnh", "Applied to order"),
    CaseApprovedBy => ("Người phê duyệt", "Approved by"),
    CaseRefunds => ("Hoàn tiền của hồ sơ", "The case's refunds"),
    CaseNotes => ("Ghi chú", "Notes"),
    CaseNoNotes => ("Chưa có ghi chú.", "No notes yet."),
    CaseAddNoteLabel => ("Ghi chú mới (tối đa 2000 ký tự)", "New note (at most 2000 characters)"),
    CaseAddNote => ("Thêm ghi chú", "Add the note"),
    CaseHistory => ("Lịch sử thao tác", "History"),
    CaseResolve => ("Xử lý hồ sơ", "Resolve the case"),
    CaseResolveFourEyes => (
        "Hoàn tiền và dùng tiền cho lệnh khác cần một quản trị viên khác phê duyệt.",
        "A refund or an apply needs the approval of another administrator."
    ),
    CaseResolveNoteLabel => (
        "Ghi chú (với hoàn tiền: lý do gửi ngân hàng, tối đa 255 ký tự)",
        "Note (for a refund: the reason sent to the bank, at most 255 characters)"
    ),
    CaseApplyPaymentLabel => (
        "Mã lệnh nhận tiền (chỉ khi dùng cho lệnh khác)",
        "Payment id that receives the money (apply only)"
    ),
    CaseDecision => ("Phê duyệt", "Decision"),
    ResolutionRefund => ("Hoàn tiền cho người nộp", "Refund the payer"),
    ResolutionApply => ("Dùng cho lệnh khác đang chờ", "Apply to another pending order"),
    ResolutionNoAction => ("Không cần chuyển tiền", "No action"),
    ResolutionMatchedLater => ("Đã khớp ở lần đối soát sau", "Matched by a later run"),
    ResolutionPaid => ("Lệnh đã được thanh toán", "The order was paid"),
    RefundsAwaiting => ("Hoàn tiền chờ phê duyệt", "Refunds awaiting approval"),
    RefundsNoneAwaiting => ("Không có hoàn tiền nào chờ phê duyệt.", "No refunds await approval."),
    RefundId => ("Mã hoàn tiền", "Refund id"),
    RefundKind => ("Loại hoàn tiền", "Refund kind"),
    RefundKindPayment => ("Hoàn tiền lệnh", "Payment refund"),
    RefundKindSuspense => ("Hoàn tiền tạm giữ", "Suspense refund"),
    RefundStatusPendingApproval => ("Chờ phê duyệt", "Awaiting approval"),
    RefundStatusRejected => ("Bị từ chối", "Rejected"),
    RefundStatusApproved => ("Đã phê duyệt, chờ ngân hàng", "Approved, waiting for the bank"),
    RefundStatusCompleted => ("Đã hoàn", "Completed"),
    RefundStatusFailed => ("Thất bại", "Failed"),
    RefundRequestedAt => ("Yêu cầu lúc", "Requested at"),
    RefundRequestedBy => ("Người yêu cầu", "Requested by"),
    RefundCase => ("Hồ sơ", "Case"),
    RefundReason => ("Lý do", "Reason"),
    Approve => ("Phê duyệt", "Approve"),
    Reject => ("Từ chối", "Reject"),
    RejectReason => ("Lý do từ chối", "Reason for rejecting"),
    WaitingForOtherAdmin => (
        "Bạn là người yêu cầu: một quản trị viên khác phải phê duyệt hoặc từ chối. Người yêu cầu:",
        "You requested this: another administrator must approve or reject it. Requested by:"
    ),
    AwaitingAdminOtherThan => (
        "Chờ một quản trị viên khác với người yêu cầu phê duyệt. Người yêu cầu:",
        "Awaiting approval by an administrator other than the requester:"
    ),
    // -- notifications --
    NtfTitle => ("Thông báo cho cơ quan", "Notifications to agencies"),
    NtfStatusPending => ("Đang chờ gửi", "Pending"),
    NtfStatusDelivered => ("Đã gửi", "Delivered"),
    NtfStatusDead => ("Gửi thất bại (đã ngừng thử)", "Dead (no more attempts)"),
    NtfDeadAndPending => ("Thất bại và đang chờ", "Dead and pending"),
    NtfNone => ("Không có sự kiện nào.", "No events."),
    NtfShowAll => ("Xem tất cả", "Show all"),
    NtfEvent => ("Mã sự kiện", "Event id"),
    NtfType => ("Loại sự kiện", "Event type"),
    NtfAttempts => ("Số lần gửi", "Attempts"),
    NtfLastError => ("Lỗi gần nhất", "Last error"),
    NtfNextAttempt => ("Lần gửi tiếp theo", "Next attempt"),
    NtfDeliveredAt => ("Gửi thành công lúc", "Delivered at"),
    NtfAction => ("Thao tác", "Action"),
    NtfRedeliver => ("Gửi lại", "Redeliver"),
    NtfRedelivered => ("Đã lên lịch gửi lại sự kiện", "Scheduled for redelivery: event"),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_has_a_text_in_both_languages() {
        for key in T::ALL {
            for lang in [Lang::Vi, Lang::En] {
                assert!(
                    !key.get(lang).trim().is_empty(),
                    "{key:?} has no {} text",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn languages_parse_from_their_codes_only() {
        assert_eq!("vi".parse(), Ok(Lang::Vi));
        assert_eq!("en".parse(), Ok(Lang::En));
        assert_eq!("EN".parse::<Lang>(), Err(()));
        assert_eq!(Lang::default(), Lang::Vi);
    }
}
