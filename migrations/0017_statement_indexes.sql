-- Agency statements (GET /v1/statements/daily) read one agency's orders paid in a business day
-- and its refunds completed in it. Without these, each statement would walk every order paid
-- that day by all agencies (payments_paid_at) and every refund of the agency ever made
-- (refunds_agency_seq); with them it reads only its own rows, already in time order.

CREATE INDEX payments_agency_paid_at ON payments (agency_code, paid_at) WHERE status = 'paid';

CREATE INDEX refunds_agency_completed_at ON refunds (agency_code, completed_at)
    WHERE status = 'completed';
