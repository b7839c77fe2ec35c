-- Run once by the postgres image on an empty data volume, as POSTGRES_USER (waybill),
-- who therefore owns every database. Temporal's auto-setup fills in its two.
CREATE DATABASE waybill_customer;
CREATE DATABASE waybill_order;
CREATE DATABASE waybill_shipment;
CREATE DATABASE waybill_returns;
CREATE DATABASE waybill_supplier;
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
